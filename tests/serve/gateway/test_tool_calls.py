"""Tool calls: Mistral's [TOOL_CALLS] answers read as OpenAI tool calls, whole and streamed."""

from __future__ import annotations

import json

from serve.engine.types import EngineOutput
from serve.gateway.prompting import client_text_spots, mistral_call_id, new_tool_call_id, texts_at, with_texts
from serve.gateway.responses import DONE_EVENT, ChatShape, ChoiceResult
from serve.gateway.tool_calls import parse_tool_calls
from serve.protocol import ChatMessage, Usage

CALL = '[{"name": "get_weather", "arguments": {"city": "Paris"}}]'


async def events(*items):
    for item in items:
        yield item


def test_marker_then_json_is_a_tool_call_in_auto_mode_only():
    calls = parse_tool_calls(f"[TOOL_CALLS] {CALL}", "auto")
    assert calls and calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}
    assert len(calls[0].id) == 9 and calls[0].id.isalnum()
    assert parse_tool_calls(CALL, "auto") is None  # no marker: plain text
    assert parse_tool_calls("[TOOL_CALLS] not json", "auto") is None
    assert parse_tool_calls(CALL, "forced")[0].function.name == "get_weather"
    assert parse_tool_calls(f"[TOOL_CALLS] {CALL}", "none") is None


def test_call_ids_are_mistral_shaped_and_stable():
    assert mistral_call_id("abcDEF123") == "abcDEF123"
    mapped = mistral_call_id("call_0123456789abcdef")
    assert len(mapped) == 9 and mapped.isalnum() and mapped == mistral_call_id("call_0123456789abcdef")
    assert len({new_tool_call_id() for _ in range(50)}) == 50


def test_a_whole_tool_call_answer():
    shape = ChatShape("chatcmpl-1", "m", "forced")
    body = shape.whole([ChoiceResult(text=CALL, tokens=9, finish_reason="stop")], Usage.of(1, 9)).model_dump()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    plain = ChatShape("chatcmpl-2", "m", "auto").whole([ChoiceResult(text="hi", finish_reason="stop")], Usage.of(1, 1))
    assert plain.model_dump()["choices"][0]["message"] == {"role": "assistant", "content": "hi"}


async def test_streamed_tool_calls_are_held_then_sent_as_deltas():
    shape = ChatShape("chatcmpl-3", "m", "auto")
    outputs = [EngineOutput("[TOOL_", 1), EngineOutput("CALLS] [{\"name\": \"get_weather\", ", 3),
               EngineOutput('"arguments": {"city": "Paris"}}]', 5, "stop")]
    raw = [e async for e in shape.events(events(*[(0, o) for o in outputs]), 1, False)]
    chunks = [json.loads(e.removeprefix("data: ")) for e in raw if e != DONE_EVENT]
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert not any(d.get("content") for d in deltas)  # nothing of the marker or JSON leaks as text
    calls = [d["tool_calls"] for d in deltas if "tool_calls" in d]
    assert len(calls) == 1 and calls[0][0]["function"]["name"] == "get_weather" and calls[0][0]["index"] == 0
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_streamed_plain_text_in_auto_mode_flows_once_it_cannot_be_a_marker():
    shape = ChatShape("chatcmpl-4", "m", "auto")
    outputs = [EngineOutput("[", 1), EngineOutput("x] hello", 1), EngineOutput(" there", 1, "stop")]
    raw = [e async for e in shape.events(events(*[(0, o) for o in outputs]), 1, False)]
    chunks = [json.loads(e.removeprefix("data: ")) for e in raw if e != DONE_EVENT]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == "[x] hello there" and chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_input_rails_see_tool_results_and_tool_call_arguments():
    messages = [
        ChatMessage(role="system", content="policy"),
        ChatMessage(role="user", content="u"),
        ChatMessage(role="assistant", content=None, tool_calls=[
            {"id": "abcdefghi", "function": {"name": "f", "arguments": '{"to": "a@b.c"}'}}]),
        ChatMessage(role="tool", tool_call_id="abcdefghi", content="result"),
    ]
    spots = client_text_spots(messages, first=1)
    assert texts_at(messages, spots) == ["u", "", '{"to": "a@b.c"}', "result"]
    masked = with_texts(messages, spots, ["u", "", '{"to": "[EMAIL]"}', "r"])
    assert masked[2].tool_calls[0].function.arguments == '{"to": "[EMAIL]"}' and masked[3].content == "r"
    assert messages[2].tool_calls[0].function.arguments == '{"to": "a@b.c"}'  # the request is not mutated


def test_api_ids_carry_the_platform_request_id():
    from serve.gateway.request_ids import new_api_id, platform_request_id

    made = new_api_id("chatcmpl")  # outside a Ray replica: a fresh id
    assert made.startswith("chatcmpl-") and platform_request_id(made) == made.removeprefix("chatcmpl-")
    assert platform_request_id("cmpl-trace-1") == "trace-1"
