"""Ray Serve's in-place updates: changing the engine's replica bounds keeps its running replicas.

Ray hashes an application's ``args`` into its code version, and a new code version replaces every
replica (the engine reloads its weights). The replica bounds travel in the Serve config's
``deployments[]`` instead (serve/serve_config.py), which Serve applies in place. Here the bounds
change twice on the running cluster, as operators change them: once with Ray's own
``serve deploy`` CLI, once with the JSON patch ``mistral-serve ops scale`` computes for the
RayService's serveConfigV2 (KubeRay hands a changed serveConfigV2 to the same Serve REST API).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from ops.cluster.stack import ClusterStack
from serve.operator_cli.scale import ScaleRequest, deployment_entry, scale_patch

from .conftest import single_replica, steady, wait_for_replicas

OTHERS = ("Gateway", "Moderation")


def running(stack: ClusterStack, deployment: str) -> set[str]:
    """Actor ids of the deployment's RUNNING replicas (a restarted replica is a new actor)."""
    return {r["actor_id"] for r in stack.cluster.replicas(stack.app, deployment)}


def serve_deploy(stack: ClusterStack, serve_config: dict, path: Path) -> None:
    """Ray's ``serve deploy FILE`` against the cluster's dashboard."""
    path.write_text(yaml.safe_dump(serve_config, sort_keys=False))
    serve_cli = Path(sys.executable).with_name("serve")
    subprocess.run([str(serve_cli), "deploy", str(path), "--address", stack.cluster.dashboard_url],
                   env=stack.cluster.process_env(), check=True, timeout=120, capture_output=True)


async def test_changing_the_engines_replica_bounds_keeps_every_running_replica(stack, tmp_path):
    await single_replica(stack)
    engine = running(stack, "Engine")
    others = {name: running(stack, name) for name in OTHERS}
    assert len(engine) == 1 and all(others.values())

    # 1. serve deploy with the engine's minimum raised to 2.
    serve_config = stack.serve_config(stack.config)
    deployment_entry(serve_config, "Engine")["autoscaling_config"]["min_replicas"] = 2
    serve_deploy(stack, serve_config, tmp_path / "scaled-up.yaml")
    await wait_for_replicas(stack, lambda c: steady(c) and c.get("RUNNING") == 2, 240, "two engine replicas")
    scaled_up = running(stack, "Engine")
    assert engine < scaled_up, "the running engine replica was replaced instead of kept"
    assert {name: running(stack, name) for name in OTHERS} == others

    # 2. mistral-serve ops scale's patch of serveConfigV2, back to a minimum of 1.
    rayservice = {"spec": {"serveConfigV2": yaml.safe_dump(serve_config, sort_keys=False),
                           "rayClusterConfig": {"workerGroupSpecs": []}}}
    patch, summary = scale_patch(rayservice, ScaleRequest("engine", min_replicas=1))
    assert summary == "engine: 2..3 replicas -> 1..3 replicas"
    (replace,) = [op for op in patch if op["op"] == "replace" and op["path"] == "/spec/serveConfigV2"]
    stack.cluster.deploy(yaml.safe_load(replace["value"]))
    await single_replica(stack, timeout_s=240)
    survivor = running(stack, "Engine")
    assert survivor < scaled_up, "scaling in started a new engine replica"
    assert {name: running(stack, name) for name in OTHERS} == others
    assert stack.cluster.app_status(stack.app) == "RUNNING"
