"""What the README claims about the pipeline, as tests that fail when the claim breaks: a policy's
guardrail system prompt goes first (and its text is not moderated as the client's), usage counts
only served requests, and /v1/moderations is metered like generation."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import pytest

from serve.config import TenancyConfig
from serve.engine.errors import EngineOverloaded
from serve.engine.types import EngineOutput
from serve.errors import RateLimitError
from serve.gateway.adapter import EngineAdapter
from serve.gateway.moderation_stage import ModerationStage
from serve.gateway.pipeline import Pipeline, Tenancy
from serve.protocol import ChatCompletionRequest
from serve.tenancy.auth import Authenticator
from serve.tenancy.keys import KeyStore, Principal, Team
from serve.tenancy.quotas import QuotaManager
from serve.tenancy.usage import UsageRecorder, usage_report

GUARD = "Always assist with care. Write to ops@acme-corp.com for help."  # an address the rails would mask


class Engine:
    """Answers one token, or refuses at capacity when ``overloaded``."""

    def __init__(self) -> None:
        self.requests = []
        self.overloaded = False

    async def generate(self, request):
        self.requests.append(request)
        if self.overloaded:
            raise EngineOverloaded(retry_after_s=1)
        yield EngineOutput(text="Sure.", num_tokens=1, finish_reason="stop")

    async def ready(self):
        return True


@pytest.fixture
def pipeline(tiny_encoder, gate, offline):
    config = TenancyConfig()
    tenancy = Tenancy(Authenticator(KeyStore(gate.client), gate, config), QuotaManager(gate, config),
                      UsageRecorder(gate), cache=None)
    stage = ModerationStage(offline, offline.policies.infos(), "default")
    default = stage.policy(Principal("k", Team("t")))
    # The default policy's rails under another name, with a guardrail system prompt switched on.
    stage._policies["guarded"] = dataclasses.replace(default, system_prompt=GUARD)
    return Pipeline(EngineAdapter(tiny_encoder, 256, 4), Engine(), "m", "m@test", tenancy, stage)


def team(**fields) -> Principal:
    return Principal(f"key-{uuid.uuid4().hex[:8]}", Team(f"claims-{uuid.uuid4().hex[:8]}", salt="s", **fields))


def chat(content: str) -> ChatCompletionRequest:
    return ChatCompletionRequest(model="m", messages=[{"role": "user", "content": content}], max_tokens=4)


async def wait_for_usage(pipeline, name: str, requests: int):
    for _ in range(600):
        await asyncio.gather(*pipeline._background)
        rows = await usage_report(pipeline.tenancy.usage._gate.client, [name])
        if rows[0].requests >= requests:
            return rows[0]
        await asyncio.sleep(0.05)
    raise AssertionError("usage never recorded")


async def test_the_policy_system_prompt_goes_first_and_is_not_moderated(pipeline, tiny_tokenizer, tiny_encoder):
    await pipeline.chat(team(policy="guarded"), chat("hello"), use_cache=False)
    sent = pipeline.engine.requests[0].prompt_token_ids
    expected = EngineAdapter(tiny_encoder, 256, 4).chat(ChatCompletionRequest(
        model="m", max_tokens=4, messages=[{"role": "system", "content": GUARD}, {"role": "user", "content": "hello"}]))
    assert list(sent) == list(expected.choices[0].prompt_token_ids)
    assert "ops@acme-corp.com" in tiny_tokenizer.decode(sent)  # ours, not the client's: not masked


async def test_a_team_without_a_system_prompt_gets_none(pipeline, tiny_tokenizer):
    await pipeline.chat(team(), chat("hello"), use_cache=False)
    assert GUARD not in tiny_tokenizer.decode(pipeline.engine.requests[0].prompt_token_ids)


async def test_a_request_refused_at_capacity_is_never_charged(pipeline):
    served, refused = team(rpm=0, tpm=0), team(rpm=0, tpm=0)
    reply = await pipeline.chat(served, chat("hello"), use_cache=False)
    pipeline.engine.overloaded = True
    with pytest.raises(EngineOverloaded):
        await pipeline.chat(refused, chat("hello"), use_cache=False)
    row = await wait_for_usage(pipeline, served.team.name, 1)
    assert (row.requests, row.prompt_tokens, row.completion_tokens) == (
        1, reply.body.usage.prompt_tokens, reply.body.usage.completion_tokens)
    await asyncio.gather(*pipeline._background)
    nothing = (await usage_report(pipeline.tenancy.usage._gate.client, [refused.team.name]))[0]
    assert (nothing.requests, nothing.prompt_tokens) == (0, 0)


async def test_moderations_are_admitted_against_the_quota_and_counted(pipeline, tiny_tokenizer):
    caller = team(rpm=1, tpm=0)
    reply = await pipeline.moderations(caller, ["is this fine?", "and this"])
    assert reply.headers["x-ratelimit-limit-requests"] == "1"
    with pytest.raises(RateLimitError):
        await pipeline.moderations(caller, ["again"])
    tokens = sum(len(tiny_tokenizer(text, add_special_tokens=False)["input_ids"]) for text in ("is this fine?", "and this"))
    row = await wait_for_usage(pipeline, caller.team.name, 1)
    assert (row.requests, row.prompt_tokens, row.completion_tokens) == (1, tokens, 0)
