"""Backpressure: a full engine and a full queue refuse at once, with Retry-After, and stay bounded."""

from __future__ import annotations

from pathlib import Path

from ops.cluster.traffic import OK, RequestSpec, burst

from .conftest import single_replica


def max_overlap(outcomes) -> int:
    """Most requests in flight at once (from the client's send and end times)."""
    edges = sorted([(o.started, 1) for o in outcomes] + [(o.started + o.latency_s, -1) for o in outcomes])
    level = peak = 0
    for _, step in edges:
        level += step
        peak = max(peak, level)
    return peak


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

    count = 3 * capacity
    specs = [RequestSpec(stream=i % 4 == 0, max_tokens=96) for i in range(count)]
    outcomes = await burst(stack.base_url, stack.api_key, stack.model, specs, timeout_s=180)

    refused = [o for o in outcomes if o.outcome.endswith("engine_overloaded")]
    answered = [o for o in outcomes if o.outcome == OK]
    assert len(refused) + len(answered) == count, {o.outcome for o in outcomes}  # nothing else, nothing hung
    # Bounded: never more requests admitted at once than the replica runs plus the queue holds.
    # Ray checks the queue bound before it counts a request as queued, so requests arriving in
    # the same instant can overshoot it by a few: at most by one more queue here.
    admitted = max_overlap(answered)
    assert admitted <= capacity + options["max_queued_requests"], admitted
    assert len(refused) >= count - admitted
    for o in refused:  # streamed or not: an HTTP 503 with the OpenAI envelope and Retry-After
        assert o.status == 503 and o.retry_after == "1", o
    assert any(o.stream for o in refused)
    # Quick: every refusal comes back before the first answer does (nothing waits for a slot).
    assert max(o.latency_s for o in refused) < min(o.latency_s for o in answered)
    # Bounded: the gateway holds no backlog (the queue is bounded per caller; the rest is refused).
    assert rss_mb(gateway["pid"]) - rss_before < 150
