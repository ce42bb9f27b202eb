"""OpenAI requests -> engine requests: templates, defaults, limits."""

from __future__ import annotations

import pytest

from serve.errors import ContextLengthExceededError, InvalidRequestError
from serve.gateway.adapter import EngineAdapter
from serve.protocol import ChatCompletionRequest, CompletionRequest


@pytest.fixture
def adapter(tiny_encoder):
    return EngineAdapter(tiny_encoder, max_model_len=64, max_choices=4)


def chat(**fields) -> ChatCompletionRequest:
    fields.setdefault("messages", [{"role": "user", "content": "hi"}])
    return ChatCompletionRequest(model="m", **fields)


def test_chat_is_encoded_in_mistral_format(adapter, tiny_tokenizer):
    prepared = adapter.chat(chat(messages=[
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "hel"}, {"type": "text", "text": "lo"}]},
    ]))
    rendered = tiny_tokenizer.decode(prepared.choices[0].prompt_token_ids)
    assert rendered == "<s>[INST] be brief\n\nhello[/INST]"
    assert prepared.prompt_tokens == len(prepared.choices[0].prompt_token_ids)
    assert prepared.tool_mode == "none" and prepared.choices[0].sampling.json_schema is None


def test_default_max_tokens_fill_the_context(adapter):
    prepared = adapter.chat(chat())
    assert prepared.choices[0].sampling.max_tokens == 64 - prepared.prompt_tokens


def test_sampling_defaults_follow_openai(adapter):
    sampling = adapter.chat(chat(max_tokens=5)).choices[0].sampling
    assert (sampling.temperature, sampling.top_p, sampling.seed, sampling.stop) == (1.0, 1.0, None, ())


def test_each_choice_gets_its_own_seed(adapter):
    prepared = adapter.chat(chat(n=3, seed=10, max_tokens=2, stop="x"))
    assert [c.sampling.seed for c in prepared.choices] == [10, 11, 12]
    assert len({c.request_id for c in prepared.choices}) == 3
    assert all(c.sampling.stop == ("x",) for c in prepared.choices)


def test_context_overflow_is_refused(adapter):
    with pytest.raises(ContextLengthExceededError) as caught:
        adapter.chat(chat(max_tokens=61))
    assert caught.value.code == "context_length_exceeded" and caught.value.param == "messages"
    with pytest.raises(ContextLengthExceededError):
        adapter.completion(CompletionRequest(model="m", prompt="word " * 100))


@pytest.mark.parametrize(
    "fields", [{"n": 5}, {"logprobs": True}, {"top_logprobs": 2},
               {"functions": [{"name": "f"}]}, {"audio": {"voice": "x"}}, {"logit_bias": {"40000": 5}},
               {"messages": [{"role": "assistant", "content": "x"}]},
               {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                             {"role": "tool", "content": "r", "tool_call_id": "abcdefghi"}]}],
)
def test_unsupported_or_invalid_requests_are_400(adapter, fields):
    with pytest.raises(InvalidRequestError):
        adapter.chat(chat(**fields))


def test_completion_prompts_become_choices(adapter, tiny_tokenizer):
    prepared = adapter.completion(CompletionRequest(model="m", prompt=["one", "two"], n=2, max_tokens=3))
    assert len(prepared) == 2 and all(len(p.choices) == 2 for p in prepared)
    assert prepared[0].choices[0].prompt_token_ids[0] == tiny_tokenizer.bos_token_id


def test_vllm_extra_fields_fix_the_output_length(adapter):
    # The openai client sends them with extra_body={"ignore_eos": True, "min_tokens": 8}.
    prepared = adapter.chat(chat(max_tokens=5, ignore_eos=True, min_tokens=8))
    sampling = prepared.choices[0].sampling
    assert (sampling.ignore_eos, sampling.min_tokens) == (True, 5)  # min_tokens never exceeds max_tokens
    assert adapter.chat(chat(max_tokens=5)).choices[0].sampling.min_tokens == 0
    with pytest.raises(ValueError):
        chat(min_tokens=-1)


def test_prompts_times_n_beyond_max_choices_is_refused_before_tokenizing(adapter, monkeypatch):
    def no_tokenizing(*_args, **_kwargs):
        raise AssertionError("tokenized a request that is refused anyway")

    monkeypatch.setattr(adapter, "encoder", no_tokenizing)
    with pytest.raises(InvalidRequestError) as caught:
        adapter.completion(CompletionRequest(model="m", prompt=["p"] * (adapter.max_choices + 1)))
    assert caught.value.param == "prompt"


def test_unsupported_fields_are_named_in_the_400(adapter):
    with pytest.raises(InvalidRequestError) as caught:
        adapter.chat(chat(prediction={"type": "content", "content": "x"}))
    assert caught.value.param == "prediction" and caught.value.code == "unsupported_parameter"
    adapter.chat(chat(store=False, metadata=None, max_tokens=1))  # unset / false: nothing to refuse


def test_logit_bias_and_response_format_reach_the_engine(adapter):
    sampling = adapter.chat(chat(logit_bias={"42": -100, "7": 3.5}, max_tokens=2,
                                 response_format={"type": "json_object"})).choices[0].sampling
    assert sampling.logit_bias == ((7, 3.5), (42, -100.0))
    assert sampling.json_schema == '{"type":"object"}'


def test_tools_choose_the_tool_mode_and_forced_schema(adapter):
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    auto = adapter.chat(chat(tools=tools, max_tokens=2))
    assert auto.tool_mode == "auto" and auto.choices[0].sampling.show_token_ids == (5,)
    forced = adapter.chat(chat(tools=tools, tool_choice="required", parallel_tool_calls=False, max_tokens=2))
    assert forced.tool_mode == "forced" and forced.choices[0].prompt_token_ids[-1] == 5  # ends with [TOOL_CALLS]
    assert '"maxItems":1' in forced.choices[0].sampling.json_schema
    none = adapter.chat(chat(tools=tools, tool_choice="none", max_tokens=2))
    assert none.tool_mode == "none" and 6 not in none.choices[0].prompt_token_ids  # no [AVAILABLE_TOOLS]


def test_a_schema_that_cannot_be_enforced_is_a_400(adapter):
    with pytest.raises(InvalidRequestError) as caught:
        adapter.chat(chat(response_format={"type": "json_schema", "json_schema": {
            "name": "x", "schema": {"type": "object", "properties": {"a": {"$ref": "#/nowhere"}}}}}))
    assert caught.value.param == "response_format"
