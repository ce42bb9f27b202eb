"""Shaping generated choices into OpenAI responses and server-sent events."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from importlib import metadata
from typing import Literal

from pydantic import BaseModel

from ..engine.types import EngineOutput
from ..errors import api_error, internal_error
from ..protocol import (
    AssistantMessage,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatDelta,
    Completion,
    CompletionChoice,
    FunctionCallDelta,
    ToolCallDelta,
    Usage,
)
from .tool_calls import ToolMode, may_become_tool_calls, parse_tool_calls

logger = logging.getLogger(__name__)

DONE_EVENT = "data: [DONE]\n\n"

# A stream of (choice index, output) pairs, closed by the request's usage.
Events = AsyncGenerator["tuple[int, EngineOutput] | Usage", None]


@dataclass
class ChoiceResult:
    """A choice collected whole."""

    text: str = ""
    tokens: int = 0
    finish_reason: str | None = None


def system_fingerprint(model_fingerprint: str) -> str:
    """OpenAI's ``system_fingerprint``: changes when the model (id and revision) or the engine
    (this package's version) changes, so clients can tell when answers may differ."""
    try:
        version = metadata.version("mistral-serve")
    except metadata.PackageNotFoundError:
        version = "unknown"
    digest = hashlib.sha256(f"{model_fingerprint}|{version}".encode()).hexdigest()[:10]
    return f"fp_{digest}"


def sse(payload: dict) -> str:
    """One server-sent event carrying a JSON payload."""
    return f"data: {json.dumps(payload, separators=(',', ':'), ensure_ascii=False)}\n\n"


ClientFinishReason = Literal["stop", "length", "content_filter", "tool_calls"]
_CLIENT_REASONS: dict[str, ClientFinishReason] = {
    "stop": "stop", "length": "length", "content_filter": "content_filter", "tool_calls": "tool_calls",
}


def client_finish_reason(reason: str | None) -> ClientFinishReason:
    """Maps a finish reason to the API's; an engine failure or cancellation becomes an error."""
    if reason in _CLIENT_REASONS:
        return _CLIENT_REASONS[reason]
    raise internal_error()


class _Shape:
    """What both endpoints share: ids, the usage chunk, and the loop over engine events."""

    endpoint = ""

    def __init__(self, request_id: str, model: str, fingerprint: str | None = None) -> None:
        self.request_id, self.model, self.created = request_id, model, int(time.time())
        self.fingerprint = fingerprint

    def _chunk_model(self, choices: list, usage: Usage | None) -> BaseModel:
        raise NotImplementedError

    def _opening(self, choices: int) -> list[list]:
        """Chunk choice lists sent before any output."""
        return []

    def _increment(self, index: int, output: EngineOutput) -> list[list]:
        """Chunk choice lists for one engine output."""
        raise NotImplementedError

    async def events(self, events: Events, choices: int, include_usage: bool) -> AsyncIterator[str]:
        """The streamed response, ending with the usage chunk when asked for."""

        def chunk(chunk_choices: list, usage: Usage | None = None) -> str:
            body = self._chunk_model(chunk_choices, usage).model_dump()
            if not include_usage:
                del body["usage"]  # OpenAI sends the field only when usage was asked for
            return sse(body)

        for chunk_choices in self._opening(choices):
            yield chunk(chunk_choices)
        async for event in events:
            if isinstance(event, Usage):
                if include_usage:
                    yield chunk([], usage=event)
                continue
            for chunk_choices in self._increment(*event):
                yield chunk(chunk_choices)


class ChatShape(_Shape):
    """``chat.completion`` objects and ``chat.completion.chunk`` events: a role chunk per
    choice, content chunks, then a finish chunk per choice.

    When the request offers tools, an answer that is tool calls becomes ``tool_calls`` with
    finish reason ``tool_calls``. Streamed, a tool-call answer is held back until it is complete
    (it must parse as a whole) and sent as one ``tool_calls`` delta per call; in ``auto`` mode only
    the beginning that may still be the ``[TOOL_CALLS]`` marker is held back.
    """

    endpoint = "chat"

    def __init__(self, request_id: str, model: str, tool_mode: ToolMode = "none",
                 fingerprint: str | None = None) -> None:
        super().__init__(request_id, model, fingerprint)
        self.tool_mode = tool_mode
        self._held: dict[int, str] = {}  # choice -> text held back while it may be tool calls
        self._plain: set[int] = set()  # choices known to be plain text

    def whole(self, choices: list[ChoiceResult], usage: Usage) -> ChatCompletion:
        """The non-streamed response."""
        return ChatCompletion(
            id=self.request_id, created=self.created, model=self.model, usage=usage,
            system_fingerprint=self.fingerprint,
            choices=[self._choice(i, c) for i, c in enumerate(choices)],
        )

    def _choice(self, index: int, result: ChoiceResult) -> ChatChoice:
        reason = client_finish_reason(result.finish_reason)
        calls = parse_tool_calls(result.text, self.tool_mode) if reason == "stop" else None
        if calls:
            return ChatChoice(index=index, message=AssistantMessage(content=None, tool_calls=calls),
                              finish_reason="tool_calls")
        return ChatChoice(index=index, message=AssistantMessage(content=result.text), finish_reason=reason)

    def _chunk_model(self, choices: list, usage: Usage | None) -> ChatCompletionChunk:
        return ChatCompletionChunk(id=self.request_id, created=self.created, model=self.model, choices=choices,
                                   usage=usage, system_fingerprint=self.fingerprint)

    def _opening(self, choices: int) -> list[list]:
        return [[ChatChunkChoice(index=i, delta=ChatDelta(role="assistant", content=""))] for i in range(choices)]

    def _increment(self, index: int, output: EngineOutput) -> list[list]:
        text = self._hold(index, output)
        chunks = []
        if text:
            chunks.append([ChatChunkChoice(index=index, delta=ChatDelta(content=text))])
        if output.finish_reason is not None:
            reason = client_finish_reason(output.finish_reason)
            held = self._held.pop(index, "")
            calls = parse_tool_calls(held, self.tool_mode) if reason == "stop" and held else None
            if calls:
                deltas = [ToolCallDelta(index=n, id=c.id, type="function", function=FunctionCallDelta(
                    name=c.function.name, arguments=c.function.arguments)) for n, c in enumerate(calls)]
                chunks.append([ChatChunkChoice(index=index, delta=ChatDelta(tool_calls=deltas))])
                reason = "tool_calls"
            elif held:
                chunks.append([ChatChunkChoice(index=index, delta=ChatDelta(content=held))])
            chunks.append([ChatChunkChoice(index=index, delta=ChatDelta(), finish_reason=reason)])
        return chunks

    def _hold(self, index: int, output: EngineOutput) -> str:
        """The text that can go out now; the rest is held while it may still be tool calls."""
        if self.tool_mode == "none" or index in self._plain:
            return output.text
        held = self._held.get(index, "") + output.text
        if self.tool_mode == "forced" or may_become_tool_calls(held):
            self._held[index] = held
            return ""
        self._plain.add(index)
        self._held.pop(index, None)
        return held


class CompletionShape(_Shape):
    """``text_completion`` objects, streamed or not; a stream carries each choice's finish
    reason on its last text chunk."""

    endpoint = "completions"

    def whole(self, choices: list[ChoiceResult], usage: Usage) -> Completion:
        """The non-streamed response."""
        return Completion(
            id=self.request_id, created=self.created, model=self.model, usage=usage,
            system_fingerprint=self.fingerprint,
            choices=[
                CompletionChoice(index=i, text=c.text, finish_reason=client_finish_reason(c.finish_reason))
                for i, c in enumerate(choices)
            ],
        )

    def _chunk_model(self, choices: list, usage: Usage | None) -> Completion:
        return Completion(id=self.request_id, created=self.created, model=self.model, choices=choices, usage=usage,
                          system_fingerprint=self.fingerprint)

    def _increment(self, index: int, output: EngineOutput) -> list[list]:
        reason = None if output.finish_reason is None else client_finish_reason(output.finish_reason)
        if not output.text and reason is None:
            return []
        return [[CompletionChoice(index=index, text=output.text, finish_reason=reason)]]


async def collect(events: Events, choices: int) -> tuple[list[ChoiceResult], Usage]:
    """Gathers a whole response from its events."""
    results = [ChoiceResult() for _ in range(choices)]
    usage = Usage.of(0, 0)
    async for event in events:
        if isinstance(event, Usage):
            usage = event
            continue
        index, output = event
        result = results[index]
        result.text += output.text
        result.tokens += output.num_tokens
        result.finish_reason = output.finish_reason or result.finish_reason
    return results, usage


async def primed(events: Events) -> Events:
    """``events``, once the first of them is there.

    A stream's status and headers go out with its first byte, so a request the engine refuses
    before any output (503/429 at capacity, no replica left) must fail here, as an HTTP error,
    rather than as an error event inside a ``200`` stream.
    """
    try:
        first = await anext(events)
    except StopAsyncIteration:
        first = None
    except BaseException:
        await events.aclose()
        raise

    async def chained() -> Events:
        try:
            if first is not None:
                yield first
                async for event in events:
                    yield event
        finally:
            await events.aclose()

    return chained()


async def guard_stream(events: AsyncIterator[str]) -> AsyncIterator[str]:
    """Ends an event stream the OpenAI way: ``[DONE]``, or an error event if it fails midway."""
    try:
        async for event in events:
            yield event
    except Exception as error:
        mapped = api_error(error)
        if mapped.code == "internal_error":
            logger.error("stream failed", exc_info=error)
        yield sse(mapped.body().model_dump())
        return
    yield DONE_EVENT
