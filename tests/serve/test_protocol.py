"""The OpenAI protocol models."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from serve.protocol import ChatCompletionRequest, ChatDelta, CompletionRequest


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
