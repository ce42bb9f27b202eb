"""Autoscaling on a real cluster: replicas scale out across worker nodes under load, in after it."""

from __future__ import annotations

import random

import pytest

from ops.autoscale.record import Phase, run_ramp, save
from ops.cluster.traffic import OK, RequestSpec

from .conftest import single_replica

# The first test also waits for the cluster to start (about a minute; more on a busy machine).
pytestmark = pytest.mark.timeout(600)


def nodes_used(sample) -> int:
    return sum(1 for count in sample.by_node.values() if count)


async def test_engine_scales_out_across_workers_under_load_and_in_after_the_delay(stack, tmp_path):
    autoscaling = stack.config.engine.deployment.autoscaling
    await single_replica(stack)
    phases = [
        # 10 concurrent requests against a target of 3 per replica: Serve wants 4, capped at 3;
        # 2 fake GPUs per worker, so reaching several replicas means using both workers.
        Phase("load", 10, 300, until=lambda s: s.running >= 2 and nodes_used(s) >= 2 and s.starting == 0),
        # One request at a time: below one replica's target, so the extra replicas go; requests
        # keep running while they drain, and must all finish.
        Phase("trickle", 1, autoscaling.downscale_delay_s + 120,
              until=lambda s: s.running == autoscaling.min_replicas and s.starting == 0 and s.stopping == 0),
    ]
    timeline = await run_ramp(stack, phases, lambda: RequestSpec(stream=random.random() < 0.5, max_tokens=48))
    save(timeline, tmp_path / "autoscale.json", tmp_path / "autoscale.png")
    events = timeline.events()

    assert events["replicas_before"] == autoscaling.min_replicas
    assert events["peak_replicas"] >= 2, events
    assert events["nodes_used_at_peak"] >= 2, events  # spread over both workers
    trickle_start = timeline.phases[1]["start"]
    back = next((s.t for s in timeline.samples if s.t >= trickle_start and s.running == autoscaling.min_replicas), None)
    assert back is not None, f"never scaled back in: {events}"
    # Ray Serve waits downscale_delay_s of sustained lower load before removing a replica.
    assert back - trickle_start >= autoscaling.downscale_delay_s, events
    # Until the new replicas are up, the one replica and its queue can be full: refusals are the
    # clean, immediate 503 with Retry-After (streamed requests too), never anything else.
    summary = timeline.as_dict()["summary"]
    assert set(summary["by_outcome"]) <= {OK, "error:503:engine_overloaded"}, summary
    # Scale-in drains: every request sent while replicas were being removed was answered.
    during_scale_in = timeline.outcomes_sent_after(trickle_start)
    assert during_scale_in and {r.outcome for r in during_scale_in} == {OK}, summary
