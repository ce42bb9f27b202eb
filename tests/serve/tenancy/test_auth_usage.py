"""Authentication (revocation, Redis outages) and usage accounting."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from serve.config import TenancyConfig
from serve.errors import AuthenticationError, ServiceUnavailableError
from serve.local_stack import EmbeddedRedis
from serve.redis_gate import RedisGate
from serve.tenancy.auth import Authenticator
from serve.tenancy.keys import KeyStore
from serve.tenancy.usage import UsageRecorder, usage_report


@pytest.mark.parametrize("header", [None, "", "Bearer", "Basic abc", "Bearer ms-unknown"])
async def test_missing_or_bad_keys_are_401(gate, header):
    auth = Authenticator(KeyStore(gate.client), gate, TenancyConfig())
    with pytest.raises(AuthenticationError):
        await auth.authenticate(header)


async def test_revocation_takes_effect_within_the_cache_ttl(gate):
    store = KeyStore(gate.client)
    key, info = await store.create("auth-revoke")
    auth = Authenticator(store, gate, TenancyConfig(auth_cache_ttl_s=0.3))
    assert (await auth.authenticate(f"Bearer {key}")).team.name == "auth-revoke"
    await store.revoke(info.key_id)
    await asyncio.sleep(0.35)
    with pytest.raises(AuthenticationError):
        await auth.authenticate(f"Bearer {key}")


async def test_known_keys_survive_a_redis_outage_unknown_ones_get_503(tmp_path):
    server = EmbeddedRedis(tmp_path).start()
    gate = RedisGate(server.url)
    store = KeyStore(gate.client)
    known, _ = await store.create("outage")
    unseen, _ = await store.create("outage")
    auth = Authenticator(store, gate, TenancyConfig(auth_cache_ttl_s=0))
    await auth.authenticate(f"Bearer {known}")
    server.stop()
    assert (await auth.authenticate(f"Bearer {known}")).team.name == "outage"
    with pytest.raises(ServiceUnavailableError):
        await auth.authenticate(f"Bearer {unseen}")
    await gate.close()


async def test_usage_is_counted_per_team_and_key(gate):
    store = KeyStore(gate.client)
    key, info = await store.create("usage-team")
    principal = await store.lookup(key)
    recorder = UsageRecorder(gate)
    await recorder.record(principal, 10, 5, cached=False)
    await recorder.record(principal, 10, 5, cached=True)
    rows = await usage_report(gate.client, ["usage-team"], by_key={"usage-team": [info.key_id]})
    assert [r.as_dict() for r in rows] == [
        {"team": "usage-team", "key_id": None, "requests": 2, "prompt_tokens": 20, "completion_tokens": 10,
         "cached_requests": 1, "total_tokens": 30},
        {"team": "usage-team", "key_id": info.key_id, "requests": 2, "prompt_tokens": 20, "completion_tokens": 10,
         "cached_requests": 1, "total_tokens": 30},
    ]
    week_ago = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=7)
    assert (await usage_report(gate.client, ["usage-team"], since=week_ago))[0].requests == 2
    with pytest.raises(ValueError):
        await usage_report(gate.client, ["usage-team"], since=week_ago + dt.timedelta(days=30))


async def test_usage_is_also_counted_per_end_user(gate):
    store = KeyStore(gate.client)
    key, _ = await store.create("user-team")
    principal = await store.lookup(key)
    recorder = UsageRecorder(gate)
    await recorder.record(principal, 7, 3, cached=False, user="end-user-1")
    await recorder.record(principal, 1, 1, cached=False)  # no user: team and key only
    day = dt.datetime.now(dt.UTC).date().isoformat()
    counts = await gate.client.hgetall(f"ms:usage:user:user-team:end-user-1:{day}")
    assert {k.decode() if isinstance(k, bytes) else k: int(v) for k, v in counts.items()} == {
        "requests": 1, "prompt_tokens": 7, "completion_tokens": 3, "cached_requests": 0}
