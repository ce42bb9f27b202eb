"""Drives a load ramp against a :class:`~ops.cluster.stack.ClusterStack` and samples its replicas.

A ramp is a list of :class:`Phase`: a closed-loop concurrency held for up to ``max_s`` seconds,
or until a condition on the latest sample holds (``until``), so a run can stop pushing once the
engine has scaled out and stop waiting once it has scaled back in.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ops.cluster.stack import ClusterStack
from ops.cluster.traffic import OK, ClosedLoop, Outcome, RequestSpec, Summary


@dataclass
class Sample:
    """The cluster and the load at one moment (``t`` seconds after the ramp started)."""

    t: float
    concurrency: int
    in_flight: int
    completed: int
    errors: int
    running: int  # serving: RUNNING, or PENDING_MIGRATION (on a draining node, until replaced)
    starting: int
    stopping: int
    migrating: int = 0  # PENDING_MIGRATION (included in running)
    by_node: dict[str, int] = field(default_factory=dict)  # serving engine replicas per node


@dataclass
class Phase:
    """Hold ``concurrency`` for at most ``max_s`` seconds, less if ``until(sample)`` holds."""

    name: str
    concurrency: int
    max_s: float
    until: Callable[[Sample], bool] | None = None


@dataclass
class Timeline:
    """What a ramp recorded."""

    samples: list[Sample]
    phases: list[dict]  # name, concurrency, start and end times
    outcomes: list[Outcome]
    config: dict
    started: float = 0.0  # monotonic time of t = 0 (Outcome.started is monotonic too)

    def outcomes_sent_after(self, t: float) -> list[Outcome]:
        """Outcomes of the requests sent ``t`` seconds or more after the start."""
        return [o for o in self.outcomes if o.started - self.started >= t]

    def as_dict(self) -> dict:
        return {
            "config": self.config,
            "phases": self.phases,
            "samples": [asdict(s) for s in self.samples],
            "summary": Summary.of(self.outcomes).as_dict(),
            "events": self.events(),
        }

    def events(self) -> dict:
        """Scale-out and scale-in moments (seconds since the start; None if not seen)."""
        base = self.samples[0].running if self.samples else 0
        peak = max((s.running for s in self.samples), default=0)
        load_end = next((p["start"] for p in self.phases if p["concurrency"] == 0 and p["start"] > 0), None)
        first_start = next((s.t for s in self.samples if s.starting > 0 or s.running > base), None)
        at_peak = next((s.t for s in self.samples if s.running == peak), None)
        back = None
        if load_end is not None:
            back = next((s.t for s in self.samples if s.t >= load_end and s.running <= base), None)
        nodes_at_peak = max((len([n for n, c in s.by_node.items() if c]) for s in self.samples), default=0)
        return {"replicas_before": base, "peak_replicas": peak, "nodes_used_at_peak": nodes_at_peak,
                "first_scale_out_s": first_start, "peak_reached_s": at_peak, "load_stopped_s": load_end,
                "back_to_min_s": back,
                "scale_in_after_load_stop_s": None if back is None or load_end is None else back - load_end}


def sample(stack: ClusterStack, loop: ClosedLoop, started: float, concurrency: int) -> Sample:
    """One sample of the engine replicas (Serve REST API) and the load."""
    counts = stack.replica_counts()
    return Sample(
        t=round(time.monotonic() - started, 2),
        concurrency=concurrency,
        in_flight=loop.in_flight,
        completed=sum(r.outcome == OK for r in loop.results),
        errors=sum(r.outcome != OK for r in loop.results),
        running=counts.get("RUNNING", 0) + counts.get("PENDING_MIGRATION", 0),
        starting=counts.get("STARTING", 0),
        stopping=counts.get("STOPPING", 0),
        migrating=counts.get("PENDING_MIGRATION", 0),
        by_node=stack.running_by_node(),
    )


async def run_ramp(stack: ClusterStack, phases: list[Phase], spec: Callable[[], RequestSpec],
                   interval_s: float = 1.0, log: Callable[[str], None] | None = None) -> Timeline:
    """Runs the phases in order while sampling every ``interval_s``; returns the timeline."""
    loop = ClosedLoop(stack.base_url, stack.api_key, stack.model, spec)
    samples: list[Sample] = []
    records: list[dict] = []
    started = time.monotonic()
    try:
        for phase in phases:
            loop.set_concurrency(phase.concurrency)
            record = {"name": phase.name, "concurrency": phase.concurrency,
                      "start": round(time.monotonic() - started, 2)}
            deadline = time.monotonic() + phase.max_s
            while time.monotonic() < deadline:
                await asyncio.sleep(interval_s)
                latest = await asyncio.to_thread(sample, stack, loop, started, phase.concurrency)
                samples.append(latest)
                if log is not None:
                    log(f"{latest.t:6.1f}s  load {latest.concurrency:2d} (in flight {latest.in_flight:2d})  "
                        f"replicas running {latest.running} starting {latest.starting} stopping {latest.stopping}  "
                        f"{latest.by_node}")
                if phase.until is not None and phase.until(latest):
                    break
            record["end"] = round(time.monotonic() - started, 2)
            records.append(record)
    finally:
        await loop.stop()
    config = stack.config.engine.deployment.autoscaling
    return Timeline(samples, records, loop.results, {
        "autoscaling": config.model_dump() if config else None,
        "max_batch_size": stack.config.engine.max_batch_size,
        "workers": len(stack.cluster.worker_specs),
        "fake_gpus_per_worker": stack.fake_gpus,
    }, started=started)


def save(timeline: Timeline, json_path: Path, png_path: Path | None) -> None:
    """Writes the timeline as JSON and, with matplotlib, a PNG of load and replicas over time."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(timeline.as_dict(), indent=2))
    if png_path is not None:
        plot(timeline.samples, png_path, title="Engine autoscaling under a load ramp")


def plot(samples: list[Sample], path: Path, title: str, markers: list[tuple[float, str]] = ()) -> None:
    """Two panels: load (concurrency, in flight) and engine replicas (RUNNING per node, STARTING)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times = [s.t for s in samples]
    nodes = sorted({n for s in samples for n in s.by_node})
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(10, 6), height_ratios=(1, 1.2))
    top.step(times, [s.concurrency for s in samples], where="post", label="offered concurrency")
    top.plot(times, [s.in_flight for s in samples], label="requests in flight", alpha=0.7)
    top.set_ylabel("requests")
    top.legend(loc="upper right")
    top.set_title(title)
    stacks = [[s.by_node.get(n, 0) for s in samples] for n in nodes]
    if stacks:
        bottom.stackplot(times, *stacks, labels=[f"running on {n}" for n in nodes], step="post", alpha=0.8)
    bottom.step(times, [s.running + s.starting for s in samples], where="post", color="black",
                linestyle="--", label="running + starting")
    bottom.set_ylabel("engine replicas")
    bottom.set_xlabel("seconds")
    bottom.set_yticks(range(0, max([s.running + s.starting for s in samples] + [1]) + 2))
    bottom.legend(loc="upper right")
    for t, label in markers:
        for axis in (top, bottom):
            axis.axvline(t, color="red", alpha=0.4)
        top.annotate(label, (t, top.get_ylim()[1]), rotation=90, va="top", fontsize=7, color="red")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
