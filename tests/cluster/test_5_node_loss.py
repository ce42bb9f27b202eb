"""A worker node lost mid-load (its whole process tree killed): clean errors, then recovery."""

from __future__ import annotations

import asyncio
import time

from ops.cluster.traffic import OK

from .conftest import load_on_a_replica_node
from .test_2_faults import CLEAN_FAILURES


async def test_a_worker_node_killed_mid_load_fails_cleanly_and_replicas_come_back_elsewhere(stack):
    victim, loop = await load_on_a_replica_node(stack, max_tokens=32)
    try:
        await asyncio.to_thread(stack.cluster.kill_node, victim)  # raylet, agents, replicas: SIGKILL
        killed = time.monotonic()
        while True:
            current = await asyncio.to_thread(stack.engine_replicas)
            if current and victim not in {r["node"] for r in current}:
                break
            assert time.monotonic() - killed < 180, f"no replica came back on another node: {current}"
            await asyncio.sleep(1)
        served_after = sum(r.outcome == OK for r in loop.results)
        await asyncio.sleep(4)
        assert sum(r.outcome == OK for r in loop.results) > served_after
    finally:
        await loop.stop()
    outcomes = {r.outcome for r in loop.results}
    assert outcomes <= {OK} | CLEAN_FAILURES, outcomes
    # The GCS marks a node dead after missing its health checks (seconds after Serve saw its
    # replicas die, which is what recovery waited for above).
    while victim in await asyncio.to_thread(stack.cluster.alive_node_names):
        assert time.monotonic() - killed < 120, f"{victim} still reported alive"
        await asyncio.sleep(1)
