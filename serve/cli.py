"""The ``mistral-serve`` command line."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from .config import AppConfig, load_config, packaged_config_path
from .settings import Settings


def default_config_path() -> tuple[Path, str]:
    """The shipped config that fits this machine, and why it was chosen."""
    import torch

    if torch.cuda.is_available():
        return packaged_config_path("mistral-7b"), "a CUDA device is available"
    return packaged_config_path("local"), "no CUDA device: serving the tiny checkpoint on the CPU"


def _load_run_config(args: argparse.Namespace, settings: Settings) -> AppConfig:
    if args.config or settings.config:
        path, why = Path(args.config or settings.config), "given"
    else:
        path, why = default_config_path()
    print(f"config: {path} ({why})")
    config = load_config(path)
    host = args.host or settings.http_host
    port = args.port or settings.http_port
    if host:
        config.http.host = host
    if port:
        config.http.port = port
    return config


def _usage_banner(config: AppConfig) -> str:
    host = "127.0.0.1" if config.http.host in ("0.0.0.0", "::") else config.http.host
    base = f"http://{host}:{config.http.port}/v1"
    model = config.model.served_name
    return f"""
mistral-serve is up: {base}  (model: {model}; OpenAPI docs: http://{host}:{config.http.port}/docs)

  curl {base}/chat/completions -H 'Content-Type: application/json' \\
    -d '{{"model": "{model}", "messages": [{{"role": "user", "content": "Hello!"}}], "max_tokens": 32}}'

  python -c "from openai import OpenAI; c = OpenAI(base_url='{base}', api_key='unused'); \\
print(c.chat.completions.create(model='{model}', messages=[{{'role': 'user', 'content': 'Hello!'}}], max_tokens=32).choices[0].message.content)"

Press Ctrl-C to stop.
"""


def cmd_run(args: argparse.Namespace) -> int:
    """Starts a local Ray cluster, deploys the app, and serves until interrupted."""
    import ray
    from ray import serve

    from .app import build_application
    from .engine.loader import ModelUnavailableError

    settings = Settings()
    config = _load_run_config(args, settings)
    try:
        app = build_application(config, settings)
    except ModelUnavailableError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    ray.init(include_dashboard=args.dashboard, logging_level=logging.WARNING)
    try:
        serve.start(http_options={"host": config.http.host, "port": config.http.port})
        serve.run(app, name=config.name, route_prefix="/")
        print(_usage_banner(config), flush=True)
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        print("shutting down: draining in-flight requests...", flush=True)
        serve.shutdown()
        ray.shutdown()
    return 0


def cmd_make_tiny_model(args: argparse.Namespace) -> int:
    """Writes the tiny Mistral checkpoint used by tests and local runs."""
    from .tiny_model import make_tiny_model

    path = make_tiny_model(args.path, seed=args.seed, overwrite=args.overwrite)
    print(path)
    return 0


def ray_serve_config(config: AppConfig) -> dict:
    """A Ray Serve config file (for ``serve run FILE`` / ``serve deploy FILE``) embedding ``config``.

    The deployment config travels inline in the application's ``args``, so the cluster needs no
    copy of the YAML file: the same shape the Helm chart renders into ``serveConfigV2``.
    """
    return {
        "http_options": {"host": config.http.host, "port": config.http.port},
        "applications": [
            {
                "name": config.name,
                "route_prefix": "/",
                "import_path": "serve.app:build_app",
                "args": config.model_dump(mode="json", exclude={"http"}),
            }
        ],
    }


def cmd_ray_config(args: argparse.Namespace) -> int:
    """Prints the Ray Serve config file for a deployment config."""
    import yaml

    path = Path(args.config) if args.config else default_config_path()[0]
    print(yaml.safe_dump(ray_serve_config(load_config(path)), sort_keys=False), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``mistral-serve``."""
    parser = argparse.ArgumentParser(prog="mistral-serve", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="serve the API locally on Ray Serve")
    run.add_argument("--config", help="deployment YAML (default: picked for this machine)")
    run.add_argument("--host", help="bind address (overrides the config)")
    run.add_argument("--port", type=int, help="bind port (overrides the config)")
    run.add_argument("--dashboard", action="store_true", help="also start the Ray dashboard")
    run.set_defaults(func=cmd_run)

    ray_config = commands.add_parser("ray-config", help="print a Ray Serve config file (serve run/deploy)")
    ray_config.add_argument("--config", help="deployment YAML (default: picked for this machine)")
    ray_config.set_defaults(func=cmd_ray_config)

    tiny = commands.add_parser("make-tiny-model", help="write the tiny random-weight Mistral checkpoint")
    tiny.add_argument("path", help="output directory")
    tiny.add_argument("--seed", type=int, default=0, help="weight seed (default 0)")
    tiny.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint")
    tiny.set_defaults(func=cmd_make_tiny_model)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
