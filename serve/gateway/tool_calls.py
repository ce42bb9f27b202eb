"""Reading tool calls out of a Mistral answer.

Mistral v3 answers a tool call with ``[TOOL_CALLS]`` (a control token, which the engine writes as
text when the request offers tools) followed by a JSON list of ``{"name", "arguments"}`` objects.
A forced tool choice starts the answer after ``[TOOL_CALLS]`` (it ends the prompt), and the
answer's JSON is constrained, so it is read without the marker.
"""

from __future__ import annotations

import json
from typing import Literal

from ..protocol import FunctionCall, ToolCall
from .prompting import new_tool_call_id

TOOL_CALLS_MARKER = "[TOOL_CALLS]"
ToolMode = Literal["none", "auto", "forced"]


def parse_tool_calls(text: str, mode: ToolMode) -> list[ToolCall] | None:
    """The tool calls an answer makes, or None when it is plain text (or not valid calls).

    Args:
        text: The whole answer.
        mode: ``auto`` (calls start with the marker) or ``forced`` (the answer is the calls' JSON).
    """
    if mode == "none":
        return None
    body = text.strip()
    if mode == "auto":
        if not body.startswith(TOOL_CALLS_MARKER):
            return None
        body = body[len(TOOL_CALLS_MARKER):]
    try:
        data = json.loads(body)
    except ValueError:
        return None
    calls = data if isinstance(data, list) else [data]
    if not calls or not all(isinstance(c, dict) and isinstance(c.get("name"), str) for c in calls):
        return None
    return [
        ToolCall(id=new_tool_call_id(), function=FunctionCall(
            name=call["name"], arguments=json.dumps(call.get("arguments", {}), ensure_ascii=False)))
        for call in calls
    ]


def may_become_tool_calls(text: str) -> bool:
    """Whether a streamed answer's beginning may still turn out to be the marker (hold it back)."""
    stripped = text.lstrip()
    return TOOL_CALLS_MARKER.startswith(stripped) or stripped.startswith(TOOL_CALLS_MARKER)
