"""Shaping engine events into OpenAI responses and server-sent events."""

from __future__ import annotations

import json

import pytest

from serve.engine.errors import EngineOverloaded
from serve.engine.types import EngineOutput
from serve.errors import InternalError
from serve.gateway.responses import (
    DONE_EVENT,
    ChatShape,
    CompletionShape,
    client_finish_reason,
    collect,
    guard_stream,
    primed,
    sse,
)
from serve.protocol import Usage


async def events(*items):
    for item in items:
        yield item


def out(text, reason=None):
    return EngineOutput(text=text, num_tokens=1, finish_reason=reason)


def payloads(raw: list[str]) -> list[dict]:
    return [json.loads(e.removeprefix("data: ")) for e in raw if e != DONE_EVENT]


def test_finish_reasons_pass_or_become_an_internal_error():
    assert [client_finish_reason(r) for r in ("stop", "length", "content_filter")] == ["stop", "length", "content_filter"]
    for reason in ("error", "cancelled", None):
        with pytest.raises(InternalError):
            client_finish_reason(reason)


async def test_collect_gathers_each_choice_and_the_usage():
    results, usage = await collect(events((1, out("b", "length")), (0, out("a")), (0, out("c", "stop")),
                                          Usage.of(3, 3)), 2)
    assert [(r.text, r.tokens, r.finish_reason) for r in results] == [("ac", 2, "stop"), ("b", 1, "length")]
    assert usage.total_tokens == 6


async def test_a_chat_stream_opens_each_choice_then_sends_content_finish_and_usage():
    shape = ChatShape("chatcmpl-1", "m")
    raw = [e async for e in shape.events(events((0, out("Hi", "stop")), Usage.of(2, 1)), 1, include_usage=True)]
    chunks = payloads(raw)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[1]["choices"][0]["delta"]["content"] == "Hi"
    assert chunks[2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[3]["choices"] == [] and chunks[3]["usage"]["total_tokens"] == 3
    assert all(c["id"] == "chatcmpl-1" and c["object"] == "chat.completion.chunk" for c in chunks)


async def test_usage_is_left_out_unless_asked_for():
    shape = CompletionShape("cmpl-1", "m")
    chunks = payloads([e async for e in shape.events(events((0, out("x", "stop")), Usage.of(1, 1)), 1, False)])
    assert len(chunks) == 1 and "usage" not in chunks[0] and chunks[0]["choices"][0]["finish_reason"] == "stop"


def test_whole_responses_have_openai_shapes():
    results = [type("R", (), {"text": "Hello", "finish_reason": "stop"})()]
    chat = ChatShape("chatcmpl-2", "m").whole(results, Usage.of(1, 1)).model_dump()
    assert chat["object"] == "chat.completion" and chat["choices"][0]["message"]["content"] == "Hello"
    text = CompletionShape("cmpl-2", "m").whole(results, Usage.of(1, 1)).model_dump()
    assert text["object"] == "text_completion" and text["choices"][0]["text"] == "Hello"


async def test_guard_stream_ends_with_done_or_with_the_mapped_error_event():
    assert [e async for e in guard_stream(events(sse({"a": 1})))][-1] == DONE_EVENT

    async def failing():
        yield sse({"a": 1})
        raise EngineOverloaded(1, 429)

    raw = [e async for e in guard_stream(failing())]
    assert DONE_EVENT not in raw and payloads(raw)[-1]["error"]["code"] == "engine_overloaded"


async def test_primed_raises_a_refusal_before_the_stream_starts_and_keeps_every_event():
    async def refused():
        raise EngineOverloaded(1)
        yield  # pragma: no cover

    with pytest.raises(EngineOverloaded):
        await primed(refused())
    kept = await primed(events(1, 2, 3))
    assert [e async for e in kept] == [1, 2, 3]
