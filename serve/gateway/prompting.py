"""OpenAI chat requests as prompt-encoder input: messages, tools and the JSON schema of forced output.

Mistral v3 tool call ids are 9 alphanumeric characters; ids a client made up elsewhere (e.g.
``call_...``) are mapped to stable 9-character ids, the same for a call and its result.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import string
from typing import Any

from ..protocol import ChatCompletionRequest, ChatMessage, Tool

_ID_ALPHABET = string.ascii_letters + string.digits
_MISTRAL_ID = re.compile(r"^[a-zA-Z0-9]{9}$")


def new_tool_call_id() -> str:
    """A fresh tool call id in Mistral's v3 shape (9 alphanumeric characters)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(9))


def mistral_call_id(call_id: str) -> str:
    """``call_id`` when it is already a v3 id, else a stable 9-character id derived from it."""
    if _MISTRAL_ID.match(call_id):
        return call_id
    digest = int.from_bytes(hashlib.sha256(call_id.encode()).digest()[:8], "big")
    chars = []
    for _ in range(9):
        digest, rest = divmod(digest, len(_ID_ALPHABET))
        chars.append(_ID_ALPHABET[rest])
    return "".join(chars)


def message_dicts(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """OpenAI-style message dicts for a prompt encoder (``developer`` is a ``system`` message)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        entry: dict[str, Any] = {
            "role": "system" if message.role == "developer" else message.role,
            "content": message.text(),
        }
        if message.tool_calls:
            entry["tool_calls"] = [
                {"id": mistral_call_id(call.id), "type": "function",
                 "function": {"name": call.function.name, "arguments": call.function.arguments}}
                for call in message.tool_calls
            ]
            if not entry["content"]:
                entry.pop("content")
        if message.role == "tool":
            entry["tool_call_id"] = mistral_call_id(message.tool_call_id or "")
        out.append(entry)
    return out


def tool_dicts(request: ChatCompletionRequest) -> list[dict[str, Any]] | None:
    """The tools shown to the model (none with ``tool_choice: none``)."""
    if request.tool_mode() == "none":
        return None
    return [tool.model_dump(exclude_none=True, by_alias=True) for tool in request.tools or []]


def _arguments_schema(tool: Tool) -> dict[str, Any]:
    return tool.function.parameters or {"type": "object"}


def forced_tool_schema(request: ChatCompletionRequest) -> dict[str, Any]:
    """The JSON schema of a forced answer: a list of ``{"name", "arguments"}`` calls (one unless
    ``parallel_tool_calls``), each call's arguments matching its function's parameters."""
    calls = [
        {
            "type": "object",
            "properties": {"name": {"const": tool.function.name}, "arguments": _arguments_schema(tool)},
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for tool in request.forced_tools()
    ]
    item = calls[0] if len(calls) == 1 else {"anyOf": calls}
    schema: dict[str, Any] = {"type": "array", "items": item, "minItems": 1}
    if request.parallel_tool_calls is False:
        schema["maxItems"] = 1
    return schema


def output_schema(request: ChatCompletionRequest) -> dict[str, Any] | None:
    """The JSON schema the answer must match, if any (forced tools, then ``response_format``)."""
    if request.tool_mode() == "forced":
        return forced_tool_schema(request)
    fmt = request.response_format
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return {"type": "object"}
    assert fmt.json_schema is not None
    return fmt.json_schema.schema_ or {"type": "object"}


def schema_text(schema: dict[str, Any] | None) -> str | None:
    """A schema as canonical JSON text (it crosses to the engine and into the cache key)."""
    return None if schema is None else json.dumps(schema, sort_keys=True, separators=(",", ":"))


# Where a client-written text sits in a conversation: (message index, tool call index or None).
TextSpot = tuple[int, "int | None"]


def client_text_spots(messages: list[ChatMessage], first: int = 0) -> list[TextSpot]:
    """The client-written texts the input rails check, from message ``first`` on: every message's
    content, whatever its role (``tool`` results included), and the arguments of every assistant
    tool call (the client may have written or edited them)."""
    spots: list[TextSpot] = []
    for index in range(first, len(messages)):
        spots.append((index, None))
        for number, _ in enumerate(messages[index].tool_calls or []):
            spots.append((index, number))
    return spots


def texts_at(messages: list[ChatMessage], spots: list[TextSpot]) -> list[str]:
    """The texts at ``spots``."""
    return [messages[i].text() if call is None else messages[i].tool_calls[call].function.arguments  # type: ignore[index]
            for i, call in spots]


def with_texts(messages: list[ChatMessage], spots: list[TextSpot], texts: list[str]) -> list[ChatMessage]:
    """The conversation with the texts at ``spots`` replaced (the input rails' masked texts)."""
    out = list(messages)
    for (index, call), text in zip(spots, texts):
        message = out[index]
        if call is None:
            out[index] = message.model_copy(update={"content": text})
            continue
        calls = list(message.tool_calls or [])
        calls[call] = calls[call].model_copy(
            update={"function": calls[call].function.model_copy(update={"arguments": text})})
        out[index] = message.model_copy(update={"tool_calls": calls})
    return out
