"""Backpressure: a full engine and a full queue refuse at once, with Retry-After, and stay bounded.

The bound is measured where it holds, on the server: the engine replica's own running + waiting
sequences, sampled all through the burst, never exceed the ``max_ongoing_requests`` Ray Serve
enforces per replica. (Client-side send and end times cannot tell admitted from queued requests.)
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from ops.cluster.traffic import OK, RequestSpec, burst

from .conftest import single_replica


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def test_requests_beyond_replicas_and_queue_get_a_quick_503_with_retry_after(stack):
    await single_replica(stack)
    options = stack.config.engine.deployment.serve_options(stack.config.engine.default_max_ongoing())
    # One replica takes max_ongoing requests, the (single) gateway's handle queues max_queued more.
    capacity = options["max_ongoing_requests"] + options["max_queued_requests"]
    gateway = stack.cluster.replicas(stack.app, "Gateway")[0]
    rss_before = rss_mb(gateway["pid"])
    driver = await asyncio.to_thread(stack.driver)
    started_before = (await asyncio.to_thread(driver.call, "stats"))["started"]

    count = 3 * capacity
    specs = [RequestSpec(stream=i % 4 == 0, max_tokens=96) for i in range(count)]
    traffic = asyncio.ensure_future(burst(stack.base_url, stack.api_key, stack.model, specs, timeout_s=180))
    # The engine's own view while the burst runs: sequences it runs plus sequences it holds waiting.
    in_engine: list[tuple[int, int]] = []
    while not traffic.done():
        stats = await asyncio.to_thread(driver.call, "stats")
        in_engine.append((stats["running"], stats["waiting"]))
    outcomes = await traffic
    started = (await asyncio.to_thread(driver.call, "stats"))["started"] - started_before

    refused = [o for o in outcomes if o.outcome.endswith("engine_overloaded")]
    answered = [o for o in outcomes if o.outcome == OK]
    assert len(refused) + len(answered) == count, {o.outcome for o in outcomes}  # nothing else, nothing hung
    assert refused, "a burst of three times the capacity must be refused in part"
    # Bounded where the design bounds it: the replica never holds more than max_ongoing_requests.
    peak = max(running + waiting for running, waiting in in_engine)
    assert peak <= options["max_ongoing_requests"], in_engine
    assert max(running for running, _ in in_engine) <= stack.config.engine.max_batch_size
    # The samples saw the burst (a full batch), so the bound above was tested under load.
    assert max(running for running, _ in in_engine) == stack.config.engine.max_batch_size, in_engine
    # A refused request never reached the engine: it started exactly the answered ones.
    assert started == len(answered), (started, len(answered))
    for o in refused:  # streamed or not: an HTTP 503 with the OpenAI envelope and Retry-After
        assert o.status == 503 and o.retry_after == "1", o
    assert any(o.stream for o in refused)
    # Bounded: the gateway holds no backlog (the queue is bounded per caller; the rest is refused).
    assert rss_mb(gateway["pid"]) - rss_before < 150
