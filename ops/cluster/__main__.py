"""``python -m ops.cluster up``: the application on a local multi-node Ray cluster.

Starts an embedded Redis, a head node and ``--workers`` worker nodes (``ray start`` processes on
this machine, each worker with ``--fake-gpus`` fake GPUs), deploys ``--config`` (default
``ops/cluster/cluster.yaml``) through the Serve REST API and prints how to reach it. It stops
everything it started on Ctrl-C, on SIGTERM, or after ``--duration`` seconds; it never touches
other Ray instances on the machine (``ray stop`` would).

Connection details (API URL and key, dashboard URL, GCS address, the cluster's Ray auth token)
are also written to ``WORKDIR/cluster.json`` (owner-only) for scripts and manual checks.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time

from .options import add_cluster_options, stack_from_options
from .stack import ClusterStack


def connection_info(stack: ClusterStack) -> dict:
    """What a client or another tool needs to reach a running stack."""
    return {
        "base_url": stack.base_url,
        "api_key": stack.api_key,
        "model": stack.model,
        "app": stack.app,
        "dashboard_url": stack.cluster.dashboard_url,
        "gcs_address": stack.cluster.gcs_address,
        "ray_auth_token": stack.cluster.auth_token,
        "redis_url": stack.redis.url,
        "workdir": str(stack.workdir),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.cluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the cluster and the application; stop on Ctrl-C")
    add_cluster_options(up, ".mistral-serve/cluster")
    up.add_argument("--duration", type=float, default=3600, help="stop after this many seconds (default 3600)")
    args = parser.parse_args(argv)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stack = stack_from_options(args)
    started = time.monotonic()
    print(f"starting a head and {args.workers} workers ({args.fake_gpus} fake GPUs each); logs in {args.workdir}",
          flush=True)
    with stack:
        info = connection_info(stack)
        path = args.workdir / "cluster.json"
        path.write_text(json.dumps(info, indent=2))
        path.chmod(0o600)
        print(f"up in {time.monotonic() - started:.0f}s\n"
              f"  API:       {stack.base_url}   (model {stack.model})\n"
              f"  API key:   {stack.api_key}\n"
              f"  dashboard: {stack.cluster.dashboard_url}  (Ray token auth: ray_auth_token in {path})\n"
              f"  replicas:  {stack.running_by_node()} (engine replicas per node)\n"
              f"stops on Ctrl-C, SIGTERM or after {args.duration:.0f}s", flush=True)
        try:
            stop.wait(args.duration)
        except KeyboardInterrupt:
            pass
        print("stopping the cluster...", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
