"""``python -m ops.autoscale``: the engine scaling out and back in on a real multi-node cluster.

Starts the application on a local cluster (a head and ``--workers`` worker nodes with fake GPUs,
see ``ops/cluster``), then runs a load ramp against it through loopback HTTP:

1. ``--low`` concurrent requests (below one replica's target) for ``--low-s`` seconds;
2. ``--high`` concurrent requests until the engine runs ``max_replicas`` replicas (or
   ``--high-s`` seconds), then ``--hold-s`` seconds more;
3. no load, until the replicas are back to ``min_replicas`` (or ``--idle-s`` seconds).

Every second it samples the engine replicas (Serve REST API: state, node) and the load, prints a
line, and at the end writes ``--out``.json and ``--out``.png (offered load and requests in flight;
replicas running per node) and a summary: when scale-out started, when the peak was reached, on
how many nodes, and how long after the load stopped the replicas were back to the minimum.
The run is bounded (``--max-s``, default 600) and stops the whole cluster when done.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path

from ops.cluster.options import add_cluster_options, stack_from_options
from ops.cluster.traffic import RequestSpec
from serve.config import load_config

from .record import Phase, run_ramp, save


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.autoscale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_cluster_options(parser, ".mistral-serve/autoscale")
    parser.add_argument("--low", type=int, default=2, help="concurrency of the warm-up phase")
    parser.add_argument("--low-s", type=float, default=15, help="seconds of the warm-up phase")
    parser.add_argument("--high", type=int, default=12, help="concurrency of the peak phase")
    parser.add_argument("--high-s", type=float, default=180, help="longest peak phase (seconds)")
    parser.add_argument("--hold-s", type=float, default=15, help="peak load kept after the scale-out (seconds)")
    parser.add_argument("--idle-s", type=float, default=120, help="longest wait for the scale-in (seconds)")
    parser.add_argument("--max-tokens", type=int, default=64, help="completion tokens per request")
    parser.add_argument("--max-s", type=float, default=600, help="bound on the whole ramp (seconds)")
    parser.add_argument("--out", type=Path, default=Path("ops/results/autoscale"),
                        help="output path without extension (default ops/results/autoscale)")
    args = parser.parse_args(argv)

    config = load_config(args.config)
    autoscaling = config.engine.deployment.autoscaling
    if autoscaling is None:
        parser.error("the config's engine.deployment has no autoscaling section")
    budget = [args.max_s]

    def bounded(seconds: float) -> float:
        spent = min(seconds, budget[0])
        budget[0] -= spent
        return spent

    phases = [
        Phase("warm-up", args.low, bounded(args.low_s)),
        Phase("peak", args.high, bounded(args.high_s),
              until=lambda s: s.running >= autoscaling.max_replicas and s.starting == 0),
        Phase("peak-hold", args.high, bounded(args.hold_s)),
        Phase("idle", 0, bounded(args.idle_s),
              until=lambda s: s.running <= autoscaling.min_replicas and s.starting == 0 and s.stopping == 0),
    ]

    def spec() -> RequestSpec:
        return RequestSpec(stream=random.random() < 0.5, max_tokens=args.max_tokens)

    print(f"autoscaling: {autoscaling.model_dump(exclude_none=True)}; batch {config.engine.max_batch_size}", flush=True)
    started = time.monotonic()
    with stack_from_options(args, config) as stack:
        print(f"cluster up in {time.monotonic() - started:.0f}s; ramp: "
              + ", ".join(f"{p.name} {p.concurrency} (<= {p.max_s:.0f}s)" for p in phases), flush=True)
        timeline = asyncio.run(run_ramp(stack, phases, spec, log=lambda line: print(line, flush=True)))
    save(timeline, args.out.with_suffix(".json"), args.out.with_suffix(".png"))
    result = timeline.as_dict()
    print(json.dumps({"events": result["events"], "requests": result["summary"]["by_outcome"],
                      "p50_s": result["summary"]["p50_s"], "p99_s": result["summary"]["p99_s"]}, indent=2))
    print(f"wrote {args.out.with_suffix('.json')} and {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
