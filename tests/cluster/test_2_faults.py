"""Faults on a real cluster: a client hanging up, Redis lost, a hung model, a replica killed."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time

import httpx

from ops.cluster.traffic import DISCONNECTED, OK, ClosedLoop, RequestSpec, burst

from .conftest import single_replica, steady, wait_for_replicas

CLEAN_FAILURES = {
    "error:503:engine_unavailable", "error:stream:engine_unavailable",
    "error:503:engine_overloaded", "error:stream:engine_overloaded",
}


async def test_client_disconnect_stops_its_generation_and_frees_the_slot(stack):
    await single_replica(stack)
    driver = await asyncio.to_thread(stack.driver)
    before = await asyncio.to_thread(driver.call, "stats")
    outcomes = await burst(stack.base_url, stack.api_key, stack.model,
                           [RequestSpec(stream=True, max_tokens=400, disconnect_after_chunks=3)] * 3)
    assert [o.outcome for o in outcomes] == [DISCONNECTED] * 3
    deadline = time.monotonic() + 30
    while True:
        stats = await asyncio.to_thread(driver.call, "stats")
        cancelled = stats["finished"].get("cancelled", 0) - before["finished"].get("cancelled", 0)
        if cancelled == 3 and stats["running"] == 0 and stats["waiting"] == 0:
            break
        assert time.monotonic() < deadline, f"generations not stopped: {stats} (before {before})"
        await asyncio.sleep(0.5)
    # Fewer tokens generated than asked: the sequences left the batch when the clients left.
    assert stats["steps"] - before["steps"] < 400


def chat(stack, key: str, cache: bool = False) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    if not cache:
        headers["Cache-Control"] = "no-cache"
    body = {"model": stack.model, "messages": [{"role": "user", "content": "redis is gone"}],
            "max_tokens": 8, "temperature": 0}
    return httpx.post(f"{stack.base_url}/chat/completions", json=body, headers=headers, timeout=60)


async def test_gateway_keeps_answering_when_redis_is_lost_and_recovers_with_it(stack):
    from ops.cluster.stack import create_api_key

    known = stack.api_key
    never_seen = await asyncio.to_thread(create_api_key, stack.redis.url, "unseen")
    assert (await asyncio.to_thread(chat, stack, known)).status_code == 200
    stack.redis.stop()
    try:
        during = [await asyncio.to_thread(chat, stack, known, True) for _ in range(3)]
        assert [r.status_code for r in during] == [200] * 3  # key seen valid recently; quotas admit
        assert {r.headers["x-cache"] for r in during} == {"bypass"}
        unknown = await asyncio.to_thread(chat, stack, never_seen)
        # A key never seen cannot be told from a bad one without Redis: 503, in the envelope.
        assert unknown.status_code == 503 and unknown.json()["error"]["type"] == "server_error"
    finally:
        stack.redis.start()  # same port and data
    await asyncio.sleep(1.5)  # the gateway retries Redis one second after a failure
    assert (await asyncio.to_thread(chat, stack, never_seen)).status_code == 200
    first = await asyncio.to_thread(chat, stack, known, True)
    second = await asyncio.to_thread(chat, stack, known, True)
    assert (first.headers["x-cache"], second.headers["x-cache"]) in (("miss", "hit"), ("hit", "hit"))


async def test_a_replica_whose_model_stops_answering_is_caught_by_its_health_check_and_replaced(stack):
    engine = stack.config.engine
    await wait_for_replicas(stack, lambda c: steady(c) and c.get("RUNNING", 0) >= 1, 120, "a steady engine")
    driver = await asyncio.to_thread(stack.driver)
    hung = await asyncio.to_thread(driver.call, "inject_fault")  # every forward pass now blocks
    injected = time.monotonic()
    # Requests that land on the hung replica wait, then are retried elsewhere once it is gone.
    pending = asyncio.ensure_future(burst(stack.base_url, stack.api_key, stack.model,
                                          [RequestSpec(stream=i % 2 == 0, max_tokens=16) for i in range(4)]))
    detected = None
    while True:
        replicas = {r["replica_id"]: r["state"] for r in await asyncio.to_thread(stack.engine_replicas, ())}
        if detected is None and replicas.get(hung) != "RUNNING":
            detected = time.monotonic() - injected
        others = [rid for rid, state in replicas.items() if rid != hung and state == "RUNNING"]
        if hung not in replicas and others:
            break
        assert time.monotonic() - injected < 150, f"hung replica {hung} not replaced: {replicas}"
        await asyncio.sleep(1)
    # Stall timeout, then three failed checks in a row (Ray Serve's threshold), plus slack.
    assert detected <= engine.stall_timeout_s + 3 * engine.deployment.health_check_period_s + 20
    outcomes = await pending
    assert {o.outcome for o in outcomes} <= {OK} | CLEAN_FAILURES, [o.outcome for o in outcomes]
    after = await burst(stack.base_url, stack.api_key, stack.model, [RequestSpec(max_tokens=8)])
    assert after[0].outcome == OK


async def test_an_engine_replica_killed_mid_load_fails_cleanly_and_is_replaced(stack):
    await wait_for_replicas(stack, lambda c: steady(c) and c.get("RUNNING", 0) >= 1, 120, "a steady engine")
    loop = ClosedLoop(stack.base_url, stack.api_key, stack.model,
                      lambda: RequestSpec(stream=random.random() < 0.5, max_tokens=32), timeout_s=150)
    loop.set_concurrency(4)
    try:
        await asyncio.sleep(3)
        victim = (await asyncio.to_thread(stack.engine_replicas))[0]
        os.kill(victim["pid"], signal.SIGKILL)  # the replica's process, mid-generation
        killed = time.monotonic()
        await wait_for_replicas(stack, lambda c: c.get("RUNNING", 0) >= 1, 150, "a replacement")
        while victim["replica_id"] in {r["replica_id"] for r in await asyncio.to_thread(stack.engine_replicas, ())}:
            assert time.monotonic() - killed < 150
            await asyncio.sleep(1)
        served_after = sum(r.outcome == OK for r in loop.results)
        await asyncio.sleep(4)
        assert sum(r.outcome == OK for r in loop.results) > served_after  # the replacement serves
    finally:
        await loop.stop()
    outcomes = {r.outcome for r in loop.results}
    # Non-streamed: answered or a clean 503 (Retry-After); streamed: [DONE] or an error event.
    assert outcomes <= {OK} | CLEAN_FAILURES, outcomes
    assert all(r.retry_after for r in loop.results if r.outcome.startswith("error:503"))
