"""The pipeline's order of work, over a recording fake engine, the in-process Moderator (offline
policies) and the real Redis for quotas and usage: the policy is resolved once, the input rails
run on the client's texts before the one tokenization, and the quota is admitted on the
(masked) request that is generated from."""

from __future__ import annotations

import pytest

from serve.config import TenancyConfig
from serve.engine.types import EngineOutput
from serve.errors import ContentFilterError, InternalError, InvalidRequestError, NotFoundError
from serve.gateway.adapter import EngineAdapter
from serve.gateway.moderation_stage import ModerationStage
from serve.gateway.pipeline import Pipeline, Tenancy
from serve.protocol import ChatCompletionRequest, CompletionRequest
from serve.tenancy.auth import Authenticator
from serve.tenancy.keys import KeyStore, Principal, Team
from serve.tenancy.quotas import QuotaManager
from serve.tenancy.usage import UsageRecorder

EMAIL = "a.b@gmail.com"


class RecordingEngine:
    def __init__(self):
        self.requests = []

    async def generate(self, request):
        self.requests.append(request)
        yield EngineOutput(text="Sure.", num_tokens=1, finish_reason="stop")

    async def ready(self):
        return True


class CountingAdapter(EngineAdapter):
    calls = 0

    def chat(self, request, request_id=None):
        self.calls += 1
        return super().chat(request, request_id)

    def completion(self, request, request_id=None):
        self.calls += 1
        return super().completion(request, request_id)


class CountingStage(ModerationStage):
    lookups = 0

    def policy(self, principal):
        self.lookups += 1
        return super().policy(principal)


class RecordingQuotas(QuotaManager):
    admitted: list[int]

    async def admit(self, team, tokens):
        self.admitted.append(tokens)
        return await super().admit(team, tokens)


@pytest.fixture
def build(tiny_encoder, gate, offline):
    def make(moderated: bool = True):
        config = TenancyConfig()
        quotas = RecordingQuotas(gate, config)
        quotas.admitted = []
        tenancy = Tenancy(Authenticator(KeyStore(gate.client), gate, config), quotas, UsageRecorder(gate), cache=None)
        stage = CountingStage(offline, offline.policies.infos(), "default") if moderated else None
        engine = RecordingEngine()
        pipeline = Pipeline(CountingAdapter(tiny_encoder, 256, 4), engine, "m", "m@test", tenancy, stage)
        return pipeline, engine, quotas

    return make


def caller(policy: str | None = None) -> Principal:
    return Principal("k1", Team("pipeline-team", policy=policy))


def chat(content: str, **extra) -> ChatCompletionRequest:
    return ChatCompletionRequest(model="m", messages=[{"role": "user", "content": content}], max_tokens=4, **extra)


async def test_a_masked_chat_is_tokenized_once_and_admitted_on_what_is_generated(build, tiny_tokenizer, tiny_encoder):
    pipeline, engine, quotas = build()
    reply = await pipeline.chat(caller(), chat(f"write to {EMAIL} please"), use_cache=False)
    assert reply.body.choices[0].message.content == "Sure."
    assert pipeline.adapter.calls == 1 and pipeline.moderation.lookups == 1
    prompt = tiny_tokenizer.decode(engine.requests[0].prompt_token_ids)
    assert EMAIL not in prompt and "[EMAIL]" in prompt
    masked = EngineAdapter(tiny_encoder, 256, 4).chat(chat("write to [EMAIL] please"))
    assert quotas.admitted == [masked.prompt_tokens + 4]  # the masked prompt plus max_tokens
    assert reply.body.id == engine.requests[0].request_id.rsplit("-", 1)[0]


async def test_completion_prompts_are_masked_before_tokenization_and_choices_numbered_once(build, tiny_tokenizer):
    pipeline, engine, _ = build()
    request = CompletionRequest(model="m", prompt=[f"mail {EMAIL}", "hello"], max_tokens=2, n=2)
    reply = await pipeline.completion(caller(), request, use_cache=False)
    assert pipeline.adapter.calls == 1 and len(reply.body.choices) == 4
    assert EMAIL not in tiny_tokenizer.decode(engine.requests[0].prompt_token_ids)
    ids = [r.request_id for r in engine.requests]
    assert len(set(ids)) == 4 and all(i.startswith(reply.body.id) for i in ids)


async def test_a_blocked_input_reaches_neither_the_quota_nor_the_engine(build):
    pipeline, engine, quotas = build()
    with pytest.raises(ContentFilterError):
        await pipeline.chat(caller(), chat("key AKIAIOSFODNN7EXAMPLE"), use_cache=False)
    assert engine.requests == [] and quotas.admitted == [] and pipeline.adapter.calls == 0


async def test_a_team_with_a_missing_policy_is_refused_before_any_work(build):
    pipeline, engine, quotas = build()
    with pytest.raises(InternalError) as raised:
        await pipeline.chat(caller("gone"), chat("hello"), use_cache=False)
    assert raised.value.code == "moderation_policy_not_found"
    assert engine.requests == [] and quotas.admitted == []


async def test_without_moderation_the_request_is_generated_as_sent(build, tiny_tokenizer):
    pipeline, engine, quotas = build(moderated=False)
    await pipeline.chat(caller(), chat(f"write to {EMAIL}"), use_cache=False)
    assert EMAIL in tiny_tokenizer.decode(engine.requests[0].prompt_token_ids) and len(quotas.admitted) == 1
    with pytest.raises(NotFoundError):
        await pipeline.moderations(caller(), ["x"])


@pytest.mark.parametrize("role", ["system", "developer", "assistant"])
async def test_every_client_written_turn_is_moderated_whatever_its_role(build, tiny_tokenizer, role):
    pipeline, engine, _ = build()
    request = ChatCompletionRequest(model="m", max_tokens=4, messages=[
        {"role": role, "content": "key AKIAIOSFODNN7EXAMPLE"}, {"role": "user", "content": "go on"}])
    with pytest.raises(ContentFilterError):
        await pipeline.chat(caller(), request, use_cache=False)
    turns = [{"role": role, "content": f"write to {EMAIL}"}, {"role": "user", "content": "go on"}]
    if role == "assistant":  # the chat template wants a user turn first
        turns.insert(0, {"role": "user", "content": "hello"})
    masked = ChatCompletionRequest(model="m", max_tokens=4, messages=turns)
    await pipeline.chat(caller(), masked, use_cache=False)
    assert engine.requests and EMAIL not in tiny_tokenizer.decode(engine.requests[0].prompt_token_ids)


async def test_a_policy_with_a_system_prompt_refuses_raw_completions_before_any_work(build):
    import dataclasses

    pipeline, engine, quotas = build()
    default = pipeline.moderation.policy(caller())
    pipeline.moderation._policies["guarded"] = dataclasses.replace(default, name="guarded",
                                                                    system_prompt="Always assist with care.")
    with pytest.raises(InvalidRequestError) as raised:
        await pipeline.completion(caller("guarded"), CompletionRequest(model="m", prompt="hi", max_tokens=2),
                                  use_cache=False)
    assert (raised.value.param, raised.value.code) == ("prompt", "unsupported_by_policy")
    assert engine.requests == [] and quotas.admitted == []


async def test_tool_results_and_tool_call_arguments_are_moderated_before_tokenization(build, tiny_tokenizer):
    pipeline, engine, _ = build()
    request = ChatCompletionRequest(model="m", max_tokens=4, messages=[
        {"role": "user", "content": "send it"},
        {"role": "assistant", "tool_calls": [{"id": "abcdefghi", "type": "function",
                                              "function": {"name": "send", "arguments": f'{{"to": "{EMAIL}"}}'}}]},
        {"role": "tool", "tool_call_id": "abcdefghi", "content": f"sent to {EMAIL}"},
    ], tools=[{"type": "function", "function": {"name": "send", "parameters": {"type": "object"}}}])
    await pipeline.chat(caller(), request, use_cache=False)
    prompt = tiny_tokenizer.decode(engine.requests[0].prompt_token_ids)
    assert EMAIL not in prompt and prompt.count("[EMAIL]") == 2
