"""The command-line options every local-cluster command shares (``ops.cluster``, ``ops.autoscale``,
``ops.soak``), and the stack they describe."""

from __future__ import annotations

import argparse
from pathlib import Path

from serve.config import load_config

from .stack import CLUSTER_CONFIG, ClusterStack


def add_cluster_options(parser: argparse.ArgumentParser, workdir: str) -> None:
    """Adds ``--config``, ``--workers``, ``--fake-gpus``, ``--worker-cpus``, ``--workdir`` and
    ``--tiny-model-dir`` (``workdir``: this command's default folder for logs and Redis data)."""
    parser.add_argument("--config", type=Path, default=CLUSTER_CONFIG, help="deployment YAML")
    parser.add_argument("--workers", type=int, default=2, help="worker nodes (default 2)")
    parser.add_argument("--fake-gpus", type=int, default=2, help="fake GPUs per worker (default 2)")
    parser.add_argument("--worker-cpus", type=float, default=2, help="logical CPUs per worker (default 2)")
    parser.add_argument("--workdir", type=Path, default=Path(workdir), help=f"logs, Redis data (default {workdir})")
    parser.add_argument("--tiny-model-dir", type=Path, default=Path.home() / ".cache" / "mistral-serve" / "tiny-mistral",
                        help="the tiny checkpoint (built there if missing)")


def stack_from_options(args: argparse.Namespace, config=None) -> ClusterStack:
    """The (not yet started) stack those options describe; ``config`` overrides ``--config``."""
    return ClusterStack(args.workdir, config or load_config(args.config), tiny_model_dir=args.tiny_model_dir,
                        workers=args.workers, fake_gpus=args.fake_gpus, worker_cpus=args.worker_cpus)
