"""``mistral-serve ops scale``: patch a deployment's replica bounds in the RayService.

The bounds live in ``serveConfigV2``'s ``deployments[]`` (Ray Serve's own options, see
serve/serve_config.py): KubeRay applies a changed serveConfigV2 to the running cluster, and Ray
Serve applies a change there in place, adding or removing replicas while the running ones stay
(no weights reloaded). When the engine's new maximum needs more GPU workers than its worker
group allows, the group's ``maxReplicas`` is raised too (KubeRay updates worker group bounds in
place as well).

The patch is a JSON Patch whose first operation tests the serveConfigV2 it was computed from, so
a concurrent change makes it fail instead of being overwritten.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import yaml

from ..serve_config import ENGINE, GATEWAY, MODERATION
from .kube import GROUP, PLURAL, VERSION, Clients, OpsError, get_rayservice

DEPLOYMENTS = {"engine": ENGINE, "gateway": GATEWAY, "moderation": MODERATION}


@dataclass(frozen=True)
class ScaleRequest:
    """New bounds of one deployment; ``None`` keeps a value."""

    deployment: str
    min_replicas: int | None = None
    max_replicas: int | None = None
    replicas: int | None = None  # fixed count (for a deployment without autoscaling)


def scale_patch(rayservice: dict, request: ScaleRequest, app_name: str | None = None) -> tuple[list[dict], str]:
    """The JSON Patch for ``request`` and a one-line summary of the change.

    Raises:
        OpsError: the request does not fit the RayService (unknown deployment or application,
            autoscaling bounds on a fixed deployment, min above max, ...).
    """
    if request.deployment not in DEPLOYMENTS:
        raise OpsError(f"deployment must be one of {', '.join(DEPLOYMENTS)}")
    old_text = rayservice["spec"]["serveConfigV2"]
    serve_config = yaml.safe_load(old_text)
    options = deployment_entry(serve_config, DEPLOYMENTS[request.deployment], app_name)
    before = _bounds(options)
    scale_options(options, request)
    new_text = yaml.safe_dump(serve_config, sort_keys=False)
    patch = [
        {"op": "test", "path": "/spec/serveConfigV2", "value": old_text},
        {"op": "replace", "path": "/spec/serveConfigV2", "value": new_text},
    ]
    summary = f"{request.deployment}: {before} -> {_bounds(options)}"
    if request.deployment == "engine":
        patch += _gpu_worker_bounds(rayservice, options)
        if len(patch) > 2:
            summary += f"; GPU worker group maxReplicas -> {patch[-1]['value']}"
    return patch, summary


def deployment_entry(serve_config: dict, name: str, app_name: str | None = None) -> dict:
    """The ``deployments[]`` entry of deployment ``name`` in the (only or named) application.

    Raises:
        OpsError: no such application or entry.
    """
    apps = serve_config.get("applications", [])
    matching = [a for a in apps if app_name in (None, a.get("name"))]
    if len(matching) != 1:
        raise OpsError(f"expected one application{f' named {app_name!r}' if app_name else ''} in serveConfigV2, "
                       f"found {len(matching)}")
    entries = [d for d in matching[0].get("deployments") or [] if d.get("name") == name]
    if not entries:
        raise OpsError(f"serveConfigV2 has no deployments[] entry for {name} "
                       "(a release from an older chart: upgrade it with this chart first)")
    return entries[0]


def scale_options(options: dict, request: ScaleRequest) -> None:
    """Applies ``request`` to a ``deployments[]`` entry (in place).

    Raises:
        OpsError: the request does not fit the entry or gives invalid bounds.
    """
    autoscaling = options.get("autoscaling_config")
    if request.replicas is not None:
        if autoscaling is not None:
            raise OpsError(f"{request.deployment} autoscales: use --min/--max")
        if request.replicas < 1:
            raise OpsError("the new bounds are invalid: --replicas must be at least 1")
        options["num_replicas"] = request.replicas
    if request.min_replicas is not None or request.max_replicas is not None:
        if autoscaling is None:
            raise OpsError(f"{request.deployment} has a fixed replica count: use --replicas")
        if request.min_replicas is not None:
            autoscaling["min_replicas"] = request.min_replicas
        if request.max_replicas is not None:
            autoscaling["max_replicas"] = request.max_replicas
        low, high = autoscaling.get("min_replicas", 1), autoscaling.get("max_replicas", 1)
        if not 0 <= low <= high or high < 1:
            raise OpsError(f"the new bounds are invalid: need 0 <= min <= max and max >= 1 (min {low}, max {high})")


def _bounds(options: dict) -> str:
    autoscaling = options.get("autoscaling_config")
    if autoscaling is None:
        return f"{options.get('num_replicas', 1)} replicas"
    return f"{autoscaling['min_replicas']}..{autoscaling['max_replicas']} replicas"


def _gpu_worker_bounds(rayservice: dict, engine: dict) -> list[dict]:
    """Raises the GPU worker group's maxReplicas when the engine's maximum needs more GPUs."""
    num_gpus = float((engine.get("ray_actor_options") or {}).get("num_gpus", 0))
    if num_gpus <= 0:
        return []
    autoscaling = engine.get("autoscaling_config")
    most = autoscaling["max_replicas"] if autoscaling else engine.get("num_replicas", 1)
    groups = rayservice["spec"]["rayClusterConfig"].get("workerGroupSpecs", [])
    for index, group in enumerate(groups):
        limits = group["template"]["spec"]["containers"][0].get("resources", {}).get("limits", {})
        per_worker = float(limits.get("nvidia.com/gpu", 0))
        if per_worker <= 0:
            continue
        needed = math.ceil(most * num_gpus / per_worker)
        if needed > group["maxReplicas"]:
            return [{"op": "replace", "path": f"/spec/rayClusterConfig/workerGroupSpecs/{index}/maxReplicas",
                     "value": needed}]
        return []
    raise OpsError("no worker group has nvidia.com/gpu limits: nowhere to place GPU engine replicas")


def apply_scale(clients: Clients, namespace: str, name: str, request: ScaleRequest, app_name: str | None = None,
                dry_run: bool = False) -> str:
    """Patches the RayService; returns the summary of the change."""
    from kubernetes.client.exceptions import ApiException

    rayservice = get_rayservice(clients, namespace, name)
    patch, summary = scale_patch(rayservice, request, app_name)
    if dry_run:
        return f"(dry run) {summary}"
    try:
        clients.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, patch, _content_type="application/json-patch+json")
    except ApiException as error:
        if error.status == 422:
            raise OpsError("the RayService changed while scaling (or the patch was refused); run it again") from None
        raise OpsError(f"patch refused: {error.status} {error.reason}") from None
    return summary
