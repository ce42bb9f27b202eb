"""``python -m ops.soak``: mixed load with faults injected on a real multi-node cluster.

Starts the application on a local cluster (``ops/cluster``: a head and ``--workers`` worker nodes
with fake GPUs) and, for ``--duration`` seconds or ``--max-requests`` requests (whichever comes
first), sends a mixed closed-loop load through loopback HTTP while a fault is injected every
``--fault-every`` seconds, in turn:

* ``replica_kill``  SIGKILL to an engine replica's process;
* ``hang``          an engine replica's model stops answering (test-only fault injection);
* ``redis``         Redis stopped for ``--redis-outage-s`` seconds, then restarted;
* ``node_term``     SIGTERM to a worker node (it drains), then a new worker joins;
* ``node_kill``     SIGKILL to a worker node's whole process tree, then a new worker joins.

The load rises and falls between ``--low`` and ``--high`` concurrent requests (period
``--period`` seconds) so the engine also scales out and in: chat and text completions, streamed
or not, short and long, and some streams whose client hangs up after two events.

At the end it prints a summary (requests by HTTP status and by outcome, p50/p99 latency and
time to first token, errors by kind, each fault with how long until a request sent after it
succeeded and until its victim was replaced, engine replicas over time) and writes ``--out``.json and ``--out``.png. An outcome
that is not a clean answer or a clean error (a request cut without an error, without the OpenAI
envelope, or that hung past its timeout) makes the exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ops.autoscale.record import Sample, plot, sample
from ops.cluster.options import add_cluster_options, stack_from_options
from ops.cluster.stack import SERVING, ClusterStack
from ops.cluster.traffic import DISCONNECTED, OK, ClosedLoop, RequestSpec, Summary
from serve.config import load_config

FAULTS = ("replica_kill", "hang", "redis", "node_term", "node_kill")
MAX_DURATION_S = 3600


@dataclass
class Fault:
    """One injected fault."""

    kind: str
    at: float  # seconds since the start
    detail: str = ""
    recovered_after_s: float | None = None  # until a request sent after the fault succeeded
    replaced_after_s: float | None = None  # until the victim held no replica and one served elsewhere
    notes: list[str] = field(default_factory=list)
    victim_replica: str | None = None
    victim_node: str | None = None


def request_mix(rng: random.Random) -> RequestSpec:
    """Chat and completions, streamed or not, short to long; 8% of streams hang up early."""
    endpoint = "chat" if rng.random() < 0.7 else "completions"
    stream = rng.random() < 0.55
    spec = RequestSpec(stream=stream, endpoint=endpoint, max_tokens=rng.choice((8, 16, 32, 64, 96)))
    if stream and rng.random() < 0.08:
        spec.disconnect_after_chunks = 2
    return spec


class Soak:
    """The load, the sampler and the fault injector around one :class:`ClusterStack`."""

    def __init__(self, stack: ClusterStack, args: argparse.Namespace) -> None:
        self.stack = stack
        self.args = args
        self.rng = random.Random(args.seed)
        self.loop = ClosedLoop(stack.base_url, stack.api_key, stack.model, lambda: request_mix(self.rng),
                               max_requests=args.max_requests, timeout_s=args.request_timeout_s)
        self.samples: list[Sample] = []
        self.faults: list[Fault] = []
        self.started = time.monotonic()
        self.concurrency = args.low
        self.deadline = self.started + args.duration

    def now(self) -> float:
        return round(time.monotonic() - self.started, 2)

    async def run(self) -> None:
        self.deadline = self.started + self.args.duration
        sampler = asyncio.create_task(self._sample_forever())
        faults = asyncio.create_task(self._faults_forever())
        try:
            while time.monotonic() < self.deadline and self.loop.sent < self.args.max_requests:
                phase = (self.now() % self.args.period) / self.args.period  # triangle wave
                level = self.args.low + (self.args.high - self.args.low) * (1 - abs(2 * phase - 1))
                self.concurrency = max(1, round(level))
                self.loop.set_concurrency(self.concurrency)
                await asyncio.sleep(2)
            # A fault under way finishes (and its recovery is measured) under load.
            await asyncio.wait({faults}, timeout=300)
        finally:
            for task in (sampler, faults):
                task.cancel()
            await asyncio.gather(sampler, faults, return_exceptions=True)
            await self.loop.stop()

    async def _sample_forever(self) -> None:
        while True:
            try:
                self.samples.append(await asyncio.to_thread(sample, self.stack, self.loop, self.started,
                                                            self.concurrency))
            except Exception as error:  # noqa: BLE001 - a sample may fail while a node dies
                print(f"{self.now():7.1f}s  sample failed: {error!r}", flush=True)
            await asyncio.sleep(2)

    async def _faults_forever(self) -> None:
        kinds = [k for k in self.args.faults.split(",") if k]
        index = 0
        while True:
            await asyncio.sleep(self.args.fault_every)
            if time.monotonic() > self.deadline - 30:
                return  # no new fault at the very end: each one is followed through
            kind = kinds[index % len(kinds)]
            index += 1
            fault = Fault(kind, self.now())
            self.faults.append(fault)
            try:
                await getattr(self, f"_inject_{kind}")(fault)
            except Exception as error:  # noqa: BLE001 - reported, the soak goes on
                fault.notes.append(f"injection failed: {error!r}")
            print(f"{self.now():7.1f}s  fault {kind}: {fault.detail} {' '.join(fault.notes)}", flush=True)
            await asyncio.gather(self._recovered(fault), self._replaced(fault))

    async def _replaced(self, fault: Fault, timeout_s: float = 240) -> None:
        """How long until the victim replica (or node) held no replica and another one served."""
        if fault.victim_replica is None and fault.victim_node is None:
            return
        injected = self.started + fault.at
        while time.monotonic() - injected < timeout_s:
            serving = await asyncio.to_thread(self.stack.engine_replicas, SERVING)
            if serving and all(r["replica_id"] != fault.victim_replica and r["node"] != fault.victim_node
                               for r in serving):
                fault.replaced_after_s = round(time.monotonic() - injected, 2)
                return
            await asyncio.sleep(1)
        fault.notes.append(f"not replaced within {timeout_s}s")

    async def _recovered(self, fault: Fault, timeout_s: float = 240) -> None:
        """How long until a request sent after the fault succeeded."""
        injected = self.started + fault.at
        while time.monotonic() - injected < timeout_s:
            if any(r.outcome == OK and r.started >= injected for r in self.loop.results):
                fault.recovered_after_s = round(
                    min(r.started + r.latency_s for r in self.loop.results
                        if r.outcome == OK and r.started >= injected) - injected, 2)
                print(f"{self.now():7.1f}s  recovered from {fault.kind} after {fault.recovered_after_s}s", flush=True)
                return
            await asyncio.sleep(1)
        fault.notes.append(f"no success within {timeout_s}s")

    async def _victim(self) -> dict:
        replicas = await asyncio.to_thread(self.stack.engine_replicas)
        if not replicas:
            raise RuntimeError("no RUNNING engine replica")
        return self.rng.choice(replicas)

    async def _inject_replica_kill(self, fault: Fault) -> None:
        victim = await self._victim()
        os.kill(victim["pid"], signal.SIGKILL)
        fault.victim_replica = victim["replica_id"]
        fault.detail = f"replica {victim['replica_id']} on {victim['node']}"

    async def _inject_hang(self, fault: Fault) -> None:
        driver = await asyncio.to_thread(self.stack.driver)
        fault.victim_replica = await asyncio.to_thread(driver.call, "inject_fault")
        fault.detail = f"replica {fault.victim_replica} hung"

    async def _inject_redis(self, fault: Fault) -> None:
        self.stack.redis.stop()
        fault.detail = f"redis down for {self.args.redis_outage_s:.0f}s"
        await asyncio.sleep(self.args.redis_outage_s)
        self.stack.redis.start()

    async def _node_fault(self, fault: Fault, terminate: bool) -> None:
        victim = (await self._victim())["node"]
        workers = [n for n, node in self.stack.cluster.nodes.items() if n != "head" and node.alive]
        if len(workers) < 2:
            raise RuntimeError("only one worker left")
        fault.victim_node = victim
        if terminate:
            self.stack.cluster.terminate_node(victim)
            node = self.stack.cluster.nodes[victim]
            began = time.monotonic()
            while node.alive and time.monotonic() - began < 180:
                await asyncio.sleep(1)
            fault.notes.append(f"drained in {time.monotonic() - began:.0f}s")
        else:
            await asyncio.to_thread(self.stack.cluster.kill_node, victim)
        fault.detail = f"node {victim}"
        replacement = await asyncio.to_thread(self.stack.add_worker)
        fault.notes.append(f"{replacement} joined")

    async def _inject_node_term(self, fault: Fault) -> None:
        await self._node_fault(fault, terminate=True)

    async def _inject_node_kill(self, fault: Fault) -> None:
        await self._node_fault(fault, terminate=False)

    def report(self) -> dict:
        results = self.loop.results
        summary = Summary.of(results)
        errors = {k: v for k, v in summary.by_outcome.items() if k not in (OK, DISCONNECTED)}
        timeline, last = [], None
        for s in self.samples:
            state = (s.running, s.starting, s.stopping, s.migrating, tuple(sorted(s.by_node.items())))
            if state != last:
                timeline.append({"t": s.t, "running": s.running, "starting": s.starting, "stopping": s.stopping,
                                 "migrating": s.migrating, "by_node": s.by_node})
                last = state
        return {
            "duration_s": self.now(),
            "requests": summary.requests,
            "by_status": summary.by_status,
            "by_outcome": summary.by_outcome,
            "errors_by_kind": errors,
            "unclean": summary.unclean,
            "latency_s": {"p50": summary.p50_s, "p99": summary.p99_s},
            "ttft_s": {"p50": summary.ttft_p50_s, "p99": summary.ttft_p99_s},
            "completion_tokens": summary.tokens,
            "faults": [asdict(f) for f in self.faults],
            "replicas_over_time": timeline,
        }


def print_report(report: dict) -> None:
    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}s"

    print(f"\n== soak summary ({report['duration_s']:.0f}s, {report['requests']} requests) ==")
    print("requests by HTTP status: " + ", ".join(f"{k}: {v}" for k, v in report["by_status"].items()))
    print("requests by outcome:     " + ", ".join(f"{k}: {v}" for k, v in report["by_outcome"].items()))
    print(f"latency of answers:      p50 {seconds(report['latency_s']['p50'])}  p99 {seconds(report['latency_s']['p99'])}"
          f"   time to first token p50 {seconds(report['ttft_s']['p50'])}  p99 {seconds(report['ttft_s']['p99'])}")
    print("errors by kind:          " + (", ".join(f"{k}: {v}" for k, v in report["errors_by_kind"].items()) or "none"))
    print(f"unclean outcomes:        {report['unclean']} (cut without an error, no envelope, or hung)")
    print("faults:")
    for fault in report["faults"]:
        print(f"  {fault['at']:7.1f}s  {fault['kind']:<12} {fault['detail']:<24} "
              f"next success after {seconds(fault['recovered_after_s']):>7}  "
              f"victim replaced after {seconds(fault['replaced_after_s']):>7}  {' '.join(fault['notes'])}")
    print("engine replicas over time (changes only): t  serving/starting/stopping (migrating)  serving per node")
    for point in report["replicas_over_time"]:
        migrating = f" ({point['migrating']} migrating)" if point["migrating"] else ""
        print(f"  {point['t']:7.1f}s  {point['running']}/{point['starting']}/{point['stopping']}{migrating}  "
              f"{point['by_node']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=300, help=f"seconds of load (<= {MAX_DURATION_S})")
    parser.add_argument("--max-requests", type=int, default=5000, help="stop sending after this many")
    parser.add_argument("--fault-every", type=float, default=45, help="seconds between faults")
    parser.add_argument("--faults", default=",".join(FAULTS), help=f"comma-separated, in turn (of {', '.join(FAULTS)})")
    parser.add_argument("--redis-outage-s", type=float, default=10, help="how long Redis stays down")
    parser.add_argument("--low", type=int, default=2, help="lowest concurrency")
    parser.add_argument("--high", type=int, default=12, help="highest concurrency")
    parser.add_argument("--period", type=float, default=120, help="seconds of one low-high-low load cycle")
    parser.add_argument("--request-timeout-s", type=float, default=180, help="a request still open after this hung")
    parser.add_argument("--seed", type=int, default=0, help="seed of the request mix and victim choice")
    add_cluster_options(parser, ".mistral-serve/soak")  # --config needs fault_injection for `hang`
    parser.add_argument("--out", type=Path, default=Path("ops/results/soak"), help="output path without extension")
    args = parser.parse_args(argv)
    if not 0 < args.duration <= MAX_DURATION_S:
        parser.error(f"--duration must be in (0, {MAX_DURATION_S}]")
    unknown = set(args.faults.split(",")) - set(FAULTS) - {""}
    if unknown:
        parser.error(f"unknown faults: {', '.join(sorted(unknown))}")

    config = load_config(args.config)
    started = time.monotonic()
    with stack_from_options(args, config) as stack:
        print(f"cluster up in {time.monotonic() - started:.0f}s; soaking for {args.duration:.0f}s "
              f"(<= {args.max_requests} requests), a fault every {args.fault_every:.0f}s", flush=True)
        soak = Soak(stack, args)
        asyncio.run(soak.run())
        report = soak.report()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    plot(soak.samples, args.out.with_suffix(".png"), "Soak: load, engine replicas and faults",
         markers=[(f.at, f.kind) for f in soak.faults])
    print_report(report)
    print(f"\nwrote {args.out.with_suffix('.json')} and {args.out.with_suffix('.png')}")
    return 1 if report["unclean"] else 0


if __name__ == "__main__":
    sys.exit(main())
