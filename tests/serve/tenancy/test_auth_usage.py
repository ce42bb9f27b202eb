"""Authentication (revocation, Redis outages) and usage accounting."""

from __future__ import annotations

import datetime as dt

import pytest

from serve.config import TenancyConfig
from serve.errors import AuthenticationError, ServiceUnavailableError
from serve.local_stack import EmbeddedRedis
from serve.redis_gate import RedisGate
from serve.tenancy.auth import Authenticator
from serve.tenancy.keys import KeyStore
from serve.tenancy.outbox import AccountingOutbox
from serve.tenancy.usage import UsageRecorder, usage_report


@pytest.mark.parametrize("header", [None, "", "Bearer", "Basic abc", "Bearer ms-unknown"])
async def test_missing_or_bad_keys_are_401(gate, header):
    auth = Authenticator(KeyStore(gate.client), gate, TenancyConfig())
    with pytest.raises(AuthenticationError):
        await auth.authenticate(header)


class FakeClock:
    """The authenticator's monotonic clock, moved by the test (no sleeps, no races)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    from serve.tenancy import auth as auth_module

    fake = FakeClock()
    monkeypatch.setattr(auth_module.time, "monotonic", fake)
    return fake


async def test_revocation_takes_effect_within_the_cache_ttl(gate, clock):
    store = KeyStore(gate.client)
    key, info = await store.create("auth-revoke")
    auth = Authenticator(store, gate, TenancyConfig(auth_cache_ttl_s=0.3))
    assert (await auth.authenticate(f"Bearer {key}")).team.name == "auth-revoke"
    await store.revoke(info.key_id)
    clock.now += 0.2  # within the TTL the replica still trusts its lookup
    assert (await auth.authenticate(f"Bearer {key}")).team.name == "auth-revoke"
    clock.now += 0.11
    with pytest.raises(AuthenticationError):
        await auth.authenticate(f"Bearer {key}")


def test_the_stale_window_is_at_most_30_seconds():
    from pydantic import ValidationError

    assert TenancyConfig().stale_auth_max_s == 30
    with pytest.raises(ValidationError):
        TenancyConfig(stale_auth_max_s=31)


async def test_a_known_key_works_during_an_outage_only_within_the_stale_window(tmp_path, clock):
    server = EmbeddedRedis(tmp_path).start()
    gate = RedisGate(server.url, retry_after_s=0)
    key, _ = await KeyStore(gate.client).create("stale-cap")
    auth = Authenticator(KeyStore(gate.client), gate, TenancyConfig(auth_cache_ttl_s=1, stale_auth_max_s=30))
    await auth.authenticate(f"Bearer {key}")
    server.stop()
    clock.now += 29.9
    assert (await auth.authenticate(f"Bearer {key}")).team.name == "stale-cap"
    clock.now += 0.2  # 30.1 s since Redis last vouched for the key
    with pytest.raises(ServiceUnavailableError) as caught:
        await auth.authenticate(f"Bearer {key}")
    assert caught.value.code == "auth_unavailable"
    await gate.close()


async def test_a_key_whose_team_record_is_missing_is_refused(gate):
    from serve.errors import PermissionDeniedError

    store = KeyStore(gate.client)
    key, _ = await store.create("no-team-record")
    await gate.client.delete("ms:team:no-team-record")
    with pytest.raises(PermissionDeniedError) as caught:
        await Authenticator(store, gate, TenancyConfig()).authenticate(f"Bearer {key}")
    assert caught.value.code == "team_not_found"


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


async def test_usage_written_while_redis_is_down_lands_exactly_once_after_it_restarts(tmp_path):
    server = EmbeddedRedis(tmp_path).start()
    gate = RedisGate(server.url, retry_after_s=0.05)
    store = KeyStore(gate.client)
    key, info = await store.create("usage-outage")
    principal = await store.lookup(key)
    recorder = UsageRecorder(gate, AccountingOutbox(gate, first_backoff_s=0.01, max_backoff_s=0.1))
    assert await recorder.record(principal, 10, 1, cached=False)
    server.stop()
    for _ in range(5):
        assert not await recorder.record(principal, 10, 1, cached=False)  # buffered, not lost
    assert recorder.outbox.pending == 5
    # Restarted on the same port and data directory (Redis saves its data when stopped).
    server = EmbeddedRedis(tmp_path, port=server.port, password=server.password).start()
    assert await recorder.outbox.drained(timeout_s=60)
    rows = await usage_report(gate.client, ["usage-outage"], by_key={"usage-outage": [info.key_id]})
    assert [(r.requests, r.prompt_tokens, r.completion_tokens) for r in rows] == [(6, 60, 6), (6, 60, 6)]
    await gate.close()
    server.stop()


async def test_a_retried_usage_write_that_already_landed_is_not_counted_twice(gate):
    store = KeyStore(gate.client)
    key, _ = await store.create("usage-once")
    principal = await store.lookup(key)
    recorder = UsageRecorder(gate)
    calls = []
    real_submit = recorder.outbox.submit

    async def twice(kind, write):
        calls.append(write)
        return await real_submit(kind, write)

    recorder.outbox.submit = twice
    await recorder.record(principal, 7, 3, cached=False)
    await gate.run(calls[0])  # the same write again, as a retry after an ambiguous timeout would
    rows = await usage_report(gate.client, ["usage-once"])
    assert (rows[0].requests, rows[0].prompt_tokens, rows[0].completion_tokens) == (1, 7, 3)


async def test_a_slow_redis_fails_the_call_but_does_not_open_the_breaker(gate):
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from serve.redis_gate import RedisSlow

    async def slow(_client):
        raise RedisTimeoutError("Timeout reading from socket")

    for _ in range(20):
        with pytest.raises(RedisSlow):
            await gate.run(slow)
    assert not gate.is_open
    assert await gate.run(lambda client: client.ping())


async def test_a_refused_connection_opens_the_breaker_and_calls_fail_fast(tmp_path):
    from serve.redis_gate import RedisUnavailable

    server = EmbeddedRedis(tmp_path).start()
    gate = RedisGate(server.url, retry_after_s=3600)
    await gate.run(lambda client: client.ping())
    server.stop()
    with pytest.raises(RedisUnavailable):
        await gate.run(lambda client: client.ping())
    assert gate.is_open
    touched = []

    async def operation(client):
        touched.append(client)
        return await client.ping()

    for _ in range(10):
        with pytest.raises(RedisUnavailable):
            await gate.run(operation)
    assert touched == []  # failing fast: the network is not touched while the breaker is open
    await gate.close()


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
