"""The prompt cache on a real Redis: keys, TTL, size bound, single-flight, outages."""

from __future__ import annotations

import asyncio
import uuid

from serve.cache import CachedChoice, CachedResponse, PromptCache, cache_key, is_deterministic
from serve.config import CacheConfig
from serve.engine.types import EngineRequest, SamplingParams
from serve.local_stack import EmbeddedRedis
from serve.redis_gate import RedisGate

ANSWER = CachedResponse(choices=(CachedChoice("hello", "stop", 2),), prompt_tokens=3)


def choice(**sampling) -> EngineRequest:
    return EngineRequest("r", (1, 2, 3), SamplingParams(max_tokens=5, **sampling))


def key(salt="s", stream=False, **sampling) -> str:
    return cache_key(salt=salt, model="m@1", policy_version="p1", endpoint="chat", stream=stream,
                     choices=[choice(**(sampling or {"temperature": 0}))])


def test_keys_separate_teams_params_policy_and_delivery_mode():
    assert key() == key()
    assert key(salt="other") != key()
    assert key(temperature=0, stop=("x",)) != key()
    assert cache_key(salt="s", model="m@1", policy_version="p2", endpoint="chat", stream=False,
                     choices=[choice(temperature=0)]) != key()
    # Streams are checked window by window, whole answers whole: never replayed across modes.
    assert key(stream=True) != key()


def test_only_deterministic_requests_are_cacheable():
    assert is_deterministic([choice(temperature=0)])
    assert is_deterministic([choice(temperature=0.7, seed=3)])
    assert not is_deterministic([choice(temperature=0), choice(temperature=0.7)])


async def test_miss_then_hit_and_nothing_stored_for_failures(gate):
    cache = PromptCache(gate, CacheConfig())
    stored, failed = f"ms:cache:{uuid.uuid4().hex}", f"ms:cache:{uuid.uuid4().hex}"
    first = await cache.acquire(stored)
    assert first.status == "miss"
    await first.finish(ANSWER)
    hit = await cache.acquire(stored)
    assert (hit.status, hit.entry) == ("hit", ANSWER)
    await (await cache.acquire(failed)).finish(None)  # e.g. cancelled or blocked
    assert (await cache.acquire(failed)).status == "miss"


async def test_entries_expire(gate):
    cache = PromptCache(gate, CacheConfig(ttl_s=1))
    name = f"ms:cache:{uuid.uuid4().hex}"
    await (await cache.acquire(name)).finish(ANSWER)
    assert (await cache.acquire(name)).status == "hit"
    await asyncio.sleep(1.2)
    assert (await cache.acquire(name)).status == "miss"


async def test_size_bounds(gate):
    await gate.client.delete("ms:cache:index")
    cache = PromptCache(gate, CacheConfig(max_entries=2, max_entry_bytes=200))
    names = [f"ms:cache:{uuid.uuid4().hex}" for _ in range(3)]
    for name in names:
        await (await cache.acquire(name)).finish(ANSWER)
    assert not await gate.client.exists(names[0]) and await gate.client.exists(names[2])
    big = f"ms:cache:{uuid.uuid4().hex}"
    await (await cache.acquire(big)).finish(CachedResponse((CachedChoice("x" * 500, "stop", 1),), 1))
    assert (await cache.acquire(big)).status == "miss"


async def test_concurrent_identical_misses_generate_once(redis_url):
    gates = [RedisGate(redis_url) for _ in range(3)]  # three "replicas"
    caches = [PromptCache(g, CacheConfig()) for g in gates]
    name = f"ms:cache:{uuid.uuid4().hex}"
    generations = 0

    async def request(cache):
        nonlocal generations
        flight = await cache.acquire(name)
        if flight.status == "miss":
            generations += 1
            await asyncio.sleep(0.3)
            await flight.finish(ANSWER)
            return ANSWER
        return flight.entry

    answers = await asyncio.gather(*[request(caches[i % 3]) for i in range(9)])
    assert generations == 1 and all(a == ANSWER for a in answers)
    for g in gates:
        await g.close()


async def test_a_failed_leader_hands_over_to_a_waiter(gate):
    cache = PromptCache(gate, CacheConfig())
    name = f"ms:cache:{uuid.uuid4().hex}"
    leader = await cache.acquire(name)
    waiter = asyncio.create_task(cache.acquire(name))
    await asyncio.sleep(0.2)
    await leader.finish(None)
    assert (await waiter).status == "miss"


async def test_redis_outage_means_bypass(tmp_path):
    server = EmbeddedRedis(tmp_path).start()
    gate = RedisGate(server.url)
    cache = PromptCache(gate, CacheConfig())
    server.stop()
    assert (await cache.acquire("ms:cache:x")).status == "bypass"
    await gate.close()
