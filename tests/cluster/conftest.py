"""A real multi-node Ray cluster (head + two workers with fake GPUs) running the application.

The cluster is driven from outside this process (``ray start`` processes, the Serve REST API,
loopback HTTP, a driver subprocess for handle calls) because this pytest process runs its own
local Ray for ``tests/e2e``. One cluster serves the whole package; the tests run in file order
(``test_1_...`` to ``test_5_...``) and each leaves the cluster serving for the next.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from ops.cluster.stack import ClusterStack


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
