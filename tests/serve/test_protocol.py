"""The OpenAI protocol models."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from serve.protocol import MAX_PROMPTS, ChatCompletionRequest, ChatDelta, CompletionRequest


def test_unknown_fields_are_ignored():
    request = ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "x", "extra": 1}], "tools_v9": []}
    )
    assert request.messages[0].text() == "x"


def test_max_completion_tokens_wins_over_max_tokens():
    request = ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "x"}],
                                    max_tokens=5, max_completion_tokens=9)
    assert request.max_tokens == 9


@pytest.mark.parametrize("stop", ["", ["a", ""], ["1", "2", "3", "4", "5"]])
def test_bad_stop_values_are_rejected(stop):
    with pytest.raises(ValidationError):
        CompletionRequest(model="m", prompt="p", stop=stop)


def test_stop_and_prompt_normalise_to_lists():
    request = CompletionRequest(model="m", prompt="p", stop="END")
    assert request.stop_list() == ["END"] and request.prompts() == ["p"]


def test_usage_only_when_streaming_with_include_usage():
    base = {"model": "m", "prompt": "p"}
    assert CompletionRequest(**base, stream=True, stream_options={"include_usage": True}).include_usage()
    assert not CompletionRequest(**base, stream=False, stream_options={"include_usage": True}).include_usage()
    assert not CompletionRequest(**base, stream=True).include_usage()


def test_delta_leaves_out_unset_fields():
    assert ChatDelta(content="x").model_dump() == {"content": "x"}
    assert ChatDelta().model_dump() == {}


def _loc(error: ValidationError) -> tuple:
    return tuple(part for part in error.errors()[0]["loc"] if part not in ("str", "list[TextContentPart]"))


@pytest.mark.parametrize("body, param", [
    ('{"model":"m","messages":[{"role":"user","content":"\\ud800"}]}', ("messages", 0, "content")),
    ('{"model":"m","messages":[{"role":"user","content":"x","name":"\\udfff"}]}', ("messages", 0, "name")),
    ('{"model":"m","messages":[{"role":"user","content":"x"}],"stop":["a\\ud800"]}', ("stop",)),
    ('{"model":"m","messages":[{"role":"user","content":"x"}],"seed":18446744073709551616}', ("seed",)),
    ('{"model":"m","messages":[{"role":"user","content":"x"}],"seed":-9223372036854775809}', ("seed",)),
    ('{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":NaN}', ("temperature",)),
    ('{"model":"m","messages":[{"role":"user","content":"x"}],"top_p":Infinity}', ("top_p",)),
])
def test_hostile_values_are_refused_naming_the_field(body, param):
    import json

    with pytest.raises(ValidationError) as caught:
        ChatCompletionRequest.model_validate(json.loads(body))
    assert _loc(caught.value) == param


def test_int64_seeds_are_accepted():
    base = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    assert ChatCompletionRequest(**base, seed=2**63 - 1).seed == 2**63 - 1
    assert ChatCompletionRequest(**base, seed=-(2**63)).seed == -(2**63)


@pytest.mark.parametrize("count", [0, MAX_PROMPTS + 1, 5000])
def test_prompt_lists_are_bounded(count):
    with pytest.raises(ValidationError) as caught:
        CompletionRequest(model="m", prompt=["p"] * count)
    assert _loc(caught.value) == ("prompt",) and "prompt list" in caught.value.errors()[0]["msg"]
