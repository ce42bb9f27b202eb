"""Graceful drain: SIGTERM to a worker node under load loses no request."""

from __future__ import annotations

import asyncio
import random
import time

from ops.cluster.traffic import OK, ClosedLoop, RequestSpec

from .conftest import steady, wait_for_replicas


async def test_sigterm_to_a_worker_node_drains_it_without_losing_a_request(stack):
    await wait_for_replicas(stack, lambda c: steady(c) and c.get("RUNNING", 0) >= 1, 120, "a steady engine")
    replicas = await asyncio.to_thread(stack.engine_replicas)
    victim = replicas[0]["node"]
    others = [n for n in stack.cluster.nodes if n not in (victim, "head") and stack.cluster.nodes[n].alive]
    assert others, "the drained node's replicas need another worker"
    loop = ClosedLoop(stack.base_url, stack.api_key, stack.model,
                      lambda: RequestSpec(stream=random.random() < 0.5, max_tokens=48), timeout_s=150)
    loop.set_concurrency(3)
    try:
        await asyncio.sleep(3)
        # What Kubernetes does to the pod: SIGTERM; `ray start` marks the node draining, Serve
        # starts replacements elsewhere and stops the node's replicas gracefully, then it exits.
        stack.cluster.terminate_node(victim)
        terminated = time.monotonic()
        node = stack.cluster.nodes[victim]
        while node.alive:
            assert time.monotonic() - terminated < 150, "the node did not finish draining"
            await asyncio.sleep(1)
        drained_in = time.monotonic() - terminated
        await asyncio.sleep(3)  # new requests keep being served, elsewhere
    finally:
        await loop.stop()
    outcomes = [r.outcome for r in loop.results]
    assert outcomes and set(outcomes) == {OK}, {o: outcomes.count(o) for o in set(outcomes)}  # zero lost
    assert "finished draining" in node.log_path.read_text()  # drained, not cut at the deadline
    assert drained_in < float(stack.env["RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"])
    after = await asyncio.to_thread(stack.engine_replicas)
    assert after and victim not in {r["node"] for r in after}
    await asyncio.to_thread(stack.add_worker)  # back to two workers for the next test
