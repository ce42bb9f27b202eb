"""The ``mistral-serve`` command line."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import secrets
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from . import __version__
from .config import AppConfig, packaged_config_path
from .config_check import ConfigError, config_problems, load_checked
from .extras import MissingExtra
from .local_stack import STACK_FILE, EmbeddedRedis, LocalStack, redis_url_for_commands
from .serve_config import ray_serve_config
from .settings import Settings
from .tenancy.keys import InvalidTeamName, KeyStore
from .tenancy.usage import usage_report


def default_config_path() -> tuple[Path, str]:
    """The shipped config that fits this machine, and why it was chosen."""
    import torch

    if torch.cuda.is_available():
        return packaged_config_path("mistral-7b"), "a CUDA device is available"
    return packaged_config_path("local"), "no CUDA device: serving the tiny checkpoint on the CPU"


def _load_run_config(args: argparse.Namespace, settings: Settings) -> AppConfig:
    if args.config or settings.config:
        path, why = Path(str(args.config or settings.config)), "given"
    else:
        path, why = default_config_path()
    print(f"config: {path} ({why})")
    config = load_checked(path)  # ConfigError: one line per problem (main prints them)
    host = args.host or settings.http_host
    port = args.port or settings.http_port
    if host:
        config.http.host = host
    if port:
        config.http.port = port
    return config


def _usage_banner(config: AppConfig, stack: LocalStack, demo_key: str) -> str:
    base = stack.base_url
    model = config.model.served_name
    return f"""
mistral-serve is up: {base}  (model: {model}; OpenAPI docs: {base.removesuffix('/v1')}/docs)

Demo API key (team "demo"; a new one each run, the old one is revoked):
  export OPENAI_API_KEY={demo_key}
  export OPENAI_BASE_URL={base}

  curl $OPENAI_BASE_URL/chat/completions -H "Authorization: Bearer $OPENAI_API_KEY" \\
    -H 'Content-Type: application/json' \\
    -d '{{"model": "{model}", "messages": [{{"role": "user", "content": "Hello!"}}], "max_tokens": 32}}'

  python -c "from openai import OpenAI; c = OpenAI(); \\
print(c.chat.completions.create(model='{model}', messages=[{{'role': 'user', 'content': 'Hello!'}}], max_tokens=32).choices[0].message.content)"

Keys and usage from this directory: mistral-serve keys create --team T | keys list | usage
Admin API (/admin/keys, /admin/usage): Bearer token = admin_token in {Settings().state_dir / STACK_FILE}

Press Ctrl-C to stop.
"""


def _start_local_stack(settings: Settings) -> tuple[LocalStack, EmbeddedRedis | None]:
    """Redis and the admin token for a local run: the configured ones, or embedded ones."""
    embedded = None
    redis_url = settings.redis_url
    if not redis_url:
        embedded = EmbeddedRedis(settings.state_dir / "redis").start()
        redis_url = embedded.url
        print(f"redis: embedded server on 127.0.0.1:{embedded.port} (data in {embedded.data_dir})")
    stack = LocalStack(redis_url=redis_url, admin_token=settings.admin_token or secrets.token_urlsafe(24))
    return stack, embedded


async def _rotate_demo_key(stack: LocalStack, previous: LocalStack | None) -> str:
    store, client = _key_store(stack.redis_url)
    try:
        if previous is not None and previous.demo_key_id:
            await store.revoke(previous.demo_key_id)
        api_key, info = await store.create("demo")
        stack.demo_key_id = info.key_id
        return api_key
    finally:
        await client.aclose()


def _drain(drain_signal, timeout_s: float) -> None:
    """Lets in-flight requests finish before Serve stops (gateways refuse new ones meanwhile)."""
    from .gateway.drain import wait_for_drain

    print(f"shutting down: draining in-flight requests (at most {timeout_s:.0f}s; Ctrl-C again to stop now)",
          flush=True)
    try:
        if wait_for_drain(drain_signal, timeout_s, progress=lambda line: print(line, flush=True)):
            print("drained: no request in flight", flush=True)
        else:
            print(f"drain timed out after {timeout_s:.0f}s: stopping with requests in flight", flush=True)
    except KeyboardInterrupt:
        print("stopping now", flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    """Starts Redis (unless configured), a local Ray cluster and the app; serves until interrupted."""
    import ray
    from ray import serve

    from .app import build_application
    from .engine.loader import ModelUnavailableError
    from .gateway.drain import NAMESPACE, DrainSignal, signal_name

    settings = Settings()
    config = _load_run_config(args, settings)
    try:
        app = build_application(config, settings)
    except ModelUnavailableError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    stop = threading.Event()
    # A run started in the background from a script inherits SIGINT as ignored: restore Ctrl-C.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    stack, embedded = _start_local_stack(settings)
    try:
        demo_key = asyncio.run(_rotate_demo_key(stack, LocalStack.load(settings.state_dir)))
        host = "127.0.0.1" if config.http.host in ("0.0.0.0", "::") else config.http.host
        stack.base_url = f"http://{host}:{config.http.port}/v1"
        stack.save(settings.state_dir)
        # Replicas read their Redis URL and admin token from the environment, never from Ray's
        # (visible) deployment config.
        env = {"MISTRAL_SERVE_REDIS_URL": stack.redis_url, "MISTRAL_SERVE_ADMIN_TOKEN": stack.admin_token}
        ray.init(include_dashboard=args.dashboard, logging_level=logging.WARNING, runtime_env={"env_vars": env})
        # NOTE: after ray.init, which installs a SIGTERM handler of its own that just exits.
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        drain_actor: Any = DrainSignal  # a Ray actor class (type checkers see the plain class)
        drain_signal = drain_actor.options(name=signal_name(config.name), namespace=NAMESPACE).remote()
        try:
            serve.start(http_options={"host": config.http.host, "port": config.http.port})
            serve.run(app, name=config.name, route_prefix="/", logging_config=config.logging.serve_logging_config())
            print(_usage_banner(config, stack, demo_key), flush=True)
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            _drain(drain_signal, config.gateway.deployment.graceful_shutdown_timeout_s)
            serve.shutdown()
            ray.shutdown()
    finally:
        if embedded is not None:
            embedded.stop()
    return 0


def _key_store(redis_url: str):
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    return KeyStore(client), client


def _command_redis_url(settings: Settings) -> str:
    try:
        return redis_url_for_commands(settings.redis_url, settings.state_dir)
    except RuntimeError as error:
        raise SystemExit(f"error: {error}") from None


def cmd_keys(args: argparse.Namespace) -> int:
    """Creates, lists or revokes API keys (directly in Redis)."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    store, client = _key_store(_command_redis_url(Settings()))

    async def run() -> int:
        try:
            if args.keys_command == "create":
                models = tuple(m for m in (args.models or "").split(",") if m)
                try:
                    api_key, info = await store.create(args.team, rpm=args.rpm, tpm=args.tpm,
                                                       policy=args.policy, models=models)
                except InvalidTeamName:
                    console.print("[red]error:[/] team names are lowercase letters, digits, '.', '_', '-'")
                    return 2
                console.print(f"key id {info.key_id} for team {info.team}. The key (shown only now):")
                print(api_key)
            elif args.keys_command == "list":
                table = Table("key id", "team", "models", "created (UTC)", "revoked (UTC)")
                for info in await store.list(args.team):
                    table.add_row(info.key_id, info.team, ",".join(info.models) or "all",
                                  _utc(info.created), _utc(info.revoked) if info.revoked else "")
                console.print(table)
            else:
                info = await store.revoke(args.key_id)
                if info is None:
                    console.print(f"[red]error:[/] no key {args.key_id}")
                    return 1
                console.print(f"revoked {info.key_id} (team {info.team})")
            return 0
        finally:
            await client.aclose()

    return asyncio.run(run())


def cmd_usage(args: argparse.Namespace) -> int:
    """Prints requests and tokens per team (and per key)."""
    from rich.console import Console
    from rich.table import Table

    store, client = _key_store(_command_redis_url(Settings()))

    async def run() -> list:
        try:
            teams = [args.team] if args.team else await store.teams()
            keys: dict[str, list[str]] | None = None
            if args.by_key:
                keys = {}
                for info in await store.list(args.team):
                    keys.setdefault(info.team, []).append(info.key_id)
            return await usage_report(client, teams, args.since, keys)
        finally:
            await client.aclose()

    try:
        rows = asyncio.run(run())
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    if args.json:
        print(json.dumps([r.as_dict() for r in rows], indent=2))
        return 0
    table = Table("team", "key id", "requests", "cached", "prompt tokens", "completion tokens", "total tokens",
                  title=f"usage since {(args.since or _today()).isoformat()} (UTC)")
    for r in rows:
        table.add_row(r.team, r.key_id or "", str(r.requests), str(r.cached_requests), str(r.prompt_tokens),
                      str(r.completion_tokens), str(r.total_tokens))
    Console().print(table)
    return 0


def _utc(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _since(value: str) -> dt.date:
    """``YYYY-MM-DD`` or ``Nd`` (N days ago)."""
    if value.endswith("d") and value[:-1].isdigit():
        return _today() - dt.timedelta(days=int(value[:-1]))
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError("use YYYY-MM-DD or Nd (e.g. 7d)") from None


def cmd_make_tiny_model(args: argparse.Namespace) -> int:
    """Writes the tiny Mistral checkpoint used by tests and local runs."""
    from .tiny_model import make_tiny_model

    path = make_tiny_model(args.path, seed=args.seed, overwrite=args.overwrite)
    print(path)
    return 0


def cmd_ray_config(args: argparse.Namespace) -> int:
    """Prints the Ray Serve config file for a deployment config."""
    import yaml

    path = Path(args.config) if args.config else default_config_path()[0]
    print(yaml.safe_dump(ray_serve_config(load_checked(path)), sort_keys=False), end="")
    return 0


def cmd_config_validate(args: argparse.Namespace) -> int:
    """Checks deployment files: one line per problem on stderr, exit status 2 if there is one."""
    problems = [line for path in args.files for line in config_problems(path)]
    for line in problems:
        print(line, file=sys.stderr)
    if not problems:
        print(f"{', '.join(args.files)}: valid")
    return 2 if problems else 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``mistral-serve``."""
    parser = argparse.ArgumentParser(prog="mistral-serve", description=__doc__)
    parser.add_argument("--version", action="version", version=f"mistral-serve {__version__}")
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

    config = commands.add_parser("config", help="deployment files")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    validate = config_commands.add_parser("validate", help="check deployment files; one line per problem")
    validate.add_argument("files", nargs="+", metavar="FILE", help="deployment YAML")
    validate.set_defaults(func=cmd_config_validate)

    keys = commands.add_parser("keys", help="manage API keys (in Redis)")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_commands.add_parser("create", help="create a key (printed once)")
    create.add_argument("--team", required=True, help="team name (created if new)")
    create.add_argument("--rpm", type=int, help="team requests per minute (0: unlimited)")
    create.add_argument("--tpm", type=int, help="team tokens per minute (0: unlimited)")
    create.add_argument("--policy", help="team moderation policy")
    create.add_argument("--models", help="comma-separated models the key may use (default: all)")
    listing = keys_commands.add_parser("list", help="list keys")
    listing.add_argument("--team", help="only this team's keys")
    revoke = keys_commands.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key_id", help="the key id shown by create/list")
    keys.set_defaults(func=cmd_keys)

    usage = commands.add_parser("usage", help="requests and tokens per team")
    usage.add_argument("--team", help="only this team")
    usage.add_argument("--since", type=_since, help="first UTC day: YYYY-MM-DD or Nd (default: today)")
    usage.add_argument("--by-key", action="store_true", help="also one row per key")
    usage.add_argument("--json", action="store_true", help="print JSON instead of a table")
    usage.set_defaults(func=cmd_usage)

    tiny = commands.add_parser("make-tiny-model", help="write the tiny random-weight Mistral checkpoint")
    tiny.add_argument("path", help="output directory")
    tiny.add_argument("--seed", type=int, default=0, help="weight seed (default 0)")
    tiny.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint")
    tiny.set_defaults(func=cmd_make_tiny_model)

    from .operator_cli.cli import register as register_ops

    register_ops(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as error:
        for line in error.problems:
            print(line, file=sys.stderr)
        return 2
    except MissingExtra as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
