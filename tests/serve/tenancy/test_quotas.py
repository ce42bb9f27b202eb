"""Quotas: token buckets in Redis shared by all replicas."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from serve.config import TenancyConfig
from serve.errors import InvalidRequestError, RateLimitError, ServiceUnavailableError, TokenRateLimitError
from serve.local_stack import EmbeddedRedis
from serve.redis_gate import RedisGate
from serve.tenancy.keys import Team
from serve.tenancy.quotas import QuotaManager


def team(**limits) -> Team:
    return Team(name=f"q-{uuid.uuid4().hex[:8]}", **limits)


async def test_requests_per_minute_across_many_replicas(redis_url):
    # Eight managers with their own connections stand in for eight gateway replicas.
    gates = [RedisGate(redis_url) for _ in range(8)]
    managers = [QuotaManager(g, TenancyConfig()) for g in gates]
    caller = team(rpm=10, tpm=0)

    async def attempt(manager):
        try:
            await manager.admit(caller, 1)
            return True
        except RateLimitError as error:
            assert int(error.headers["Retry-After"]) >= 1
            assert error.headers["x-ratelimit-remaining-requests"] == "0"
            return False

    results = await asyncio.gather(*[attempt(managers[i % 8]) for i in range(40)])
    assert sum(results) == 10
    for g in gates:
        await g.close()


async def test_headers_follow_openai(gate):
    admission = await QuotaManager(gate, TenancyConfig()).admit(team(rpm=60, tpm=1000), 100)
    assert admission.headers == {
        "x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-reset-requests": "1s", "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "900", "x-ratelimit-reset-tokens": "6s",
    }


async def test_tokens_are_reserved_then_refunded(gate):
    quotas = QuotaManager(gate, TenancyConfig())
    caller = team(rpm=0, tpm=1000)
    first = await quotas.admit(caller, 600)
    with pytest.raises(TokenRateLimitError) as caught:
        await quotas.admit(caller, 600)
    assert caught.value.type == "tokens"
    bucket = f"ms:quota:{caller.name}:tokens"
    before = [float(v) for v in await gate.client.hmget(bucket, "level", "ts")]
    await quotas.settle(first, used_tokens=100)  # 500 unused tokens come back
    after = [float(v) for v in await gate.client.hmget(bucket, "level", "ts")]
    # Exactly the design's formula, on Redis' own clock: the refill since the last write plus the refund.
    expected = min(1000, before[0] + (after[1] - before[1]) * 1000 / 60 + 500)
    assert after[0] == pytest.approx(expected, abs=1e-6)


async def test_a_refund_retried_after_it_was_applied_is_not_applied_twice(gate):
    quotas = QuotaManager(gate, TenancyConfig())
    caller = team(rpm=0, tpm=100_000)
    admission = await quotas.admit(caller, 50_000)
    marker = "ms:quota:refund:test-once"
    keys = [f"ms:quota:{caller.name}:tokens", marker]
    assert await quotas._refund(keys=keys, args=[admission.tpm, 10_000, 3600]) == 1
    assert await quotas._refund(keys=keys, args=[admission.tpm, 10_000, 3600]) == 0


async def test_tokens_are_never_exceeded_under_concurrency(redis_url):
    # 8 "replicas" race 240 requests of 100 tokens against 6,000 tokens per minute: whatever the
    # interleaving, what is admitted never exceeds the bucket plus its refill over the run,
    # measured on Redis' clock (the one the script uses).
    gates = [RedisGate(redis_url) for _ in range(8)]
    managers = [QuotaManager(g, TenancyConfig()) for g in gates]
    caller = team(rpm=0, tpm=6000)

    async def attempt(manager) -> int:
        try:
            return (await manager.admit(caller, 100)).reserved_tokens
        except TokenRateLimitError:
            return 0

    start = await gates[0].client.time()
    admitted = await asyncio.gather(*[attempt(managers[i % 8]) for i in range(240)])
    end = await gates[0].client.time()
    elapsed = (end[0] + end[1] / 1e6) - (start[0] + start[1] / 1e6)
    assert sum(admitted) <= 6000 + elapsed * 6000 / 60
    assert sum(admitted) >= 6000  # the full bucket was usable
    for g in gates:
        await g.close()


async def test_a_request_larger_than_the_limit_is_a_400(gate):
    with pytest.raises(InvalidRequestError) as caught:
        await QuotaManager(gate, TenancyConfig()).admit(team(tpm=50), 51)
    assert caught.value.code == "request_too_large"


async def test_zero_limits_mean_unlimited(gate):
    quotas = QuotaManager(gate, TenancyConfig())
    caller = team(rpm=0, tpm=0)
    for _ in range(5):
        assert (await quotas.admit(caller, 10**6)).headers == {}


async def test_team_without_limits_gets_the_defaults(gate):
    admission = await QuotaManager(gate, TenancyConfig(default_rpm=3, default_tpm=0)).admit(team(), 1)
    assert admission.headers["x-ratelimit-limit-requests"] == "3"


def test_a_shared_service_fails_closed_by_default():
    assert TenancyConfig().quota_on_redis_error == "reject"


@pytest.mark.parametrize("policy", ["admit", "reject"])
async def test_redis_outage_follows_the_setting(tmp_path, policy):
    server = EmbeddedRedis(tmp_path).start()
    gate = RedisGate(server.url)
    quotas = QuotaManager(gate, TenancyConfig(quota_on_redis_error=policy))
    await quotas.admit(team(rpm=5), 1)
    server.stop()
    if policy == "admit":
        assert (await quotas.admit(team(rpm=5), 1)).reserved_tokens == 0
    else:
        with pytest.raises(ServiceUnavailableError):
            await quotas.admit(team(rpm=5), 1)
    await gate.close()
