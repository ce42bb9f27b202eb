"""Graceful drain: SIGTERM to a worker node under load loses no request."""

from __future__ import annotations

import asyncio
import time

from ops.cluster.traffic import OK

from .conftest import load_on_a_replica_node


async def test_sigterm_to_a_worker_node_drains_it_without_losing_a_request(stack):
    victim, loop = await load_on_a_replica_node(stack, max_tokens=48)
    try:
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
