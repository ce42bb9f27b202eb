"""The ``mistral-serve ops`` subcommands; :func:`register` adds them to the main parser."""

from __future__ import annotations

import argparse
import json
import sys

from ..extras import MissingExtra
from .kube import Clients, OpsError

DEFAULT_NAME = "mistral-serve"


def register(subparsers) -> argparse.ArgumentParser:
    """Adds ``ops status|scale|keys`` to ``mistral-serve``'s subcommands."""
    ops = subparsers.add_parser("ops", help="operate a release on Kubernetes (RayService)")
    ops_commands = ops.add_subparsers(dest="ops_command", required=True)

    def common(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument("-n", "--namespace", default="default", help="namespace of the release")
        parser.add_argument("--name", default=DEFAULT_NAME, help=f"RayService name (default {DEFAULT_NAME})")
        parser.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, else ~/.kube/config)")
        parser.add_argument("--context", help="kubeconfig context")
        return parser

    status = common(ops_commands.add_parser("status", help="RayService, Serve application, replicas, pending GPU pods"))
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=cmd_status)

    scale = common(ops_commands.add_parser("scale", help="change a deployment's replica bounds"))
    scale.add_argument("--deployment", required=True, choices=("engine", "gateway", "moderation"), help="which deployment")
    scale.add_argument("--min", type=int, dest="min_replicas", help="autoscaling minimum")
    scale.add_argument("--max", type=int, dest="max_replicas", help="autoscaling maximum")
    scale.add_argument("--replicas", type=int, help="fixed replica count (deployments without autoscaling)")
    scale.add_argument("--app", help="Serve application name (default: the only one)")
    scale.add_argument("--dry-run", action="store_true", help="show the change without patching")
    scale.set_defaults(func=cmd_scale)

    keys = common(ops_commands.add_parser("keys", help="API keys through the release's /admin API"))
    keys.add_argument("--api-url", help="reach the API here (e.g. the Ingress) instead of a port-forward")
    keys.add_argument("--admin-token", help="admin token (default: read from the release's Secret)")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_commands.add_parser("create", help="create a key (printed once)")
    create.add_argument("--team", required=True)
    create.add_argument("--rpm", type=int, help="team requests per minute (0: unlimited)")
    create.add_argument("--tpm", type=int, help="team tokens per minute (0: unlimited)")
    create.add_argument("--policy", help="team moderation policy")
    create.add_argument("--models", help="comma-separated models the key may use (default: all)")
    listing = keys_commands.add_parser("list", help="list keys")
    listing.add_argument("--team")
    revoke = keys_commands.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key_id")
    usage = keys_commands.add_parser("usage", help="requests and tokens per team")
    usage.add_argument("--team")
    usage.add_argument("--since", help="first UTC day, YYYY-MM-DD")
    keys.set_defaults(func=cmd_keys)
    return ops


def _clients(args: argparse.Namespace) -> Clients:
    return Clients.connect(args.kubeconfig, args.context)


def _guard(run):
    """Turns OpsError into a message and exit status 1 (2 when the [ops] extra is missing)."""

    def wrapper(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except OpsError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        except MissingExtra as error:
            print(f"error: {error}", file=sys.stderr)
            return 2

    return wrapper


@_guard
def cmd_status(args: argparse.Namespace) -> int:
    """Prints the release's state."""
    from .status import collect, format_status

    status = collect(_clients(args), args.namespace, args.name)
    print(status.as_json() if args.json else format_status(status))
    return 0


@_guard
def cmd_scale(args: argparse.Namespace) -> int:
    """Patches replica bounds."""
    from .scale import ScaleRequest, apply_scale

    if args.min_replicas is None and args.max_replicas is None and args.replicas is None:
        raise OpsError("give --min and/or --max (or --replicas)")
    request = ScaleRequest(args.deployment, args.min_replicas, args.max_replicas, args.replicas)
    print(apply_scale(_clients(args), args.namespace, args.name, request, args.app, args.dry_run))
    if not args.dry_run:
        print("note: put the same bounds in your Helm values, or the next `helm upgrade` restores the old ones")
    return 0


@_guard
def cmd_keys(args: argparse.Namespace) -> int:
    """Key administration through /admin."""
    from .keys import admin_api

    api = admin_api(_clients(args), args.namespace, args.name, args.api_url, args.admin_token)
    if args.keys_command == "create":
        models = [m for m in (args.models or "").split(",") if m]
        created = api.create(args.team, args.rpm, args.tpm, args.policy, models)
        print(f"key id {created['key_id']} for team {created['team']}. The key (shown only now):", file=sys.stderr)
        print(created["key"])
    elif args.keys_command == "list":
        for key in api.list(args.team):
            revoked = f" revoked {key['revoked']}" if key.get("revoked") else ""
            print(f"{key['key_id']}  team={key['team']}  models={','.join(key.get('models') or []) or 'all'}{revoked}")
    elif args.keys_command == "revoke":
        gone = api.revoke(args.key_id)
        print(f"revoked {gone['key_id']} (team {gone['team']})")
    else:
        print(json.dumps(api.usage(args.team, args.since), indent=2))
    return 0
