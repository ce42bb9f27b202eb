"""A real multi-node Ray cluster (head + two workers with fake GPUs) running the application.

The cluster is driven from outside this process (``ray start`` processes, the Serve REST API,
loopback HTTP, a driver subprocess for handle calls) because this pytest process runs its own
local Ray for ``tests/e2e``. One cluster serves the whole package; the tests run in file order
(``test_1_...`` to ``test_5_...``) and each leaves the cluster serving for the next.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

import pytest

from ops.cluster.stack import ClusterStack
from ops.cluster.traffic import ClosedLoop, RequestSpec


@pytest.fixture(scope="package")
def stack(tiny_model_dir, tmp_path_factory):
    """The application on a head and two workers (2 fake GPUs each); stopped after the package."""
    cluster = ClusterStack(tmp_path_factory.mktemp("cluster"), tiny_model_dir=tiny_model_dir).start()
    yield cluster
    cluster.stop()


def steady(counts: dict[str, int]) -> bool:
    """No engine replica starting, stopping or migrating."""
    return not set(counts) - {"RUNNING"}


async def wait_for_replicas(stack: ClusterStack, condition: Callable[[dict[str, int]], bool], timeout_s: float,
                            what: str) -> dict[str, int]:
    """Polls the engine's replica counts by state until ``condition`` holds; returns them."""
    deadline = time.monotonic() + timeout_s
    while True:
        counts = await asyncio.to_thread(stack.replica_counts)
        if condition(counts):
            return counts
        assert time.monotonic() < deadline, f"engine replicas never reached: {what} (last {counts})"
        await asyncio.sleep(1)


async def single_replica(stack: ClusterStack, timeout_s: float = 120) -> None:
    """Waits until the engine is back to one steady replica (its minimum in cluster.yaml)."""
    await wait_for_replicas(stack, lambda c: steady(c) and c.get("RUNNING") == 1, timeout_s, "one steady replica")


async def load_on_a_replica_node(stack: ClusterStack, max_tokens: int) -> tuple[str, ClosedLoop]:
    """A worker node running an engine replica (while another worker is alive to take over) and
    a running closed loop of 3 concurrent requests, half streamed; the caller stops the loop."""
    await wait_for_replicas(stack, lambda c: steady(c) and c.get("RUNNING", 0) >= 1, 120, "a steady engine")
    replicas = await asyncio.to_thread(stack.engine_replicas)
    victim = replicas[0]["node"]
    others = [n for n in stack.cluster.nodes if n not in (victim, "head") and stack.cluster.nodes[n].alive]
    assert others, f"the replicas of {victim} need another worker"
    loop = ClosedLoop(stack.base_url, stack.api_key, stack.model,
                      lambda: RequestSpec(stream=random.random() < 0.5, max_tokens=max_tokens), timeout_s=150)
    loop.set_concurrency(3)
    await asyncio.sleep(3)
    return victim, loop
