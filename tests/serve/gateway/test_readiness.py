"""The readiness cache: probes share one engine check and reuse it for the TTL."""

from __future__ import annotations

import asyncio

from serve.gateway.readiness import ReadinessCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_concurrent_probes_share_one_check_and_reuse_it_within_the_ttl():
    clock = Clock()
    release = asyncio.Event()
    calls = 0

    async def check() -> bool:
        nonlocal calls
        calls += 1
        await release.wait()
        return True

    cache = ReadinessCache(check, ttl_s=5, clock=clock)
    probes = [asyncio.create_task(cache.ready()) for _ in range(50)]
    await asyncio.sleep(0)  # let every probe reach the shared check
    release.set()
    assert all(await asyncio.gather(*probes)) and calls == 1
    clock.now += 4.9
    assert await cache.ready() and calls == 1
    clock.now += 0.2
    assert await cache.ready() and calls == 2


async def test_a_failing_check_is_not_ready_and_is_cached_too():
    clock = Clock()
    calls = 0

    async def check() -> bool:
        nonlocal calls
        calls += 1
        raise RuntimeError("engine gone")

    cache = ReadinessCache(check, ttl_s=5, clock=clock)
    assert await cache.ready() is False
    assert await cache.ready() is False and calls == 1


async def test_a_probe_that_goes_away_does_not_cancel_the_shared_check():
    release = asyncio.Event()

    async def check() -> bool:
        await release.wait()
        return True

    cache = ReadinessCache(check, ttl_s=5)
    impatient = asyncio.create_task(cache.ready())
    patient = asyncio.create_task(cache.ready())
    await asyncio.sleep(0)
    impatient.cancel()
    release.set()
    assert await patient is True
