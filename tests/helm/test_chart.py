"""The whole chart: helm lint, and every rendered manifest valid against the Kubernetes schemas
(kubernetes-validate) or the KubeRay CRDs vendored in ops/chart/crds/."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

import serve
from ops.chart import CRD_FILES, crd_errors, crd_validator

from .conftest import CHART, VALUES, RenderError, render, render_text, tool

KUBERNETES_VERSION = "1.30"  # the oldest minor the chart supports that kubernetes-validate ships
# prometheus-operator kinds: no schema here; their content is checked by promtool and the
# template tests (test_prometheusrule.py, test_podmonitor.py).
UNCHECKED_KINDS = {("monitoring.coreos.com/v1", "PrometheusRule"), ("monitoring.coreos.com/v1", "PodMonitor")}


def test_helm_lint_strict_passes_for_every_value_set(value_set):
    result = subprocess.run(
        [tool("helm"), "lint", "--strict", str(CHART), "-f", str(VALUES / f"{value_set}.yaml")],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[ERROR]" not in result.stdout and "[WARNING]" not in result.stdout


def test_every_manifest_is_valid_for_kubernetes_or_its_crd(value_set):
    docs = render(value_set)
    kinds = set()
    for doc in docs:
        key = (doc["apiVersion"], doc["kind"])
        kinds.add(doc["kind"])
        if doc["apiVersion"] == "ray.io/v1" and doc["kind"] in CRD_FILES:
            assert not crd_errors(doc), "\n".join(crd_errors(doc))
        elif key not in UNCHECKED_KINDS:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    assert "RayService" in kinds


def test_the_crd_check_catches_a_misspelled_field():
    doc = render("default")[-1]
    assert doc["kind"] == "RayService"
    doc["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["maxReplica"] = 3
    assert list(crd_validator("RayService").iter_errors(doc))
    assert crd_errors(doc)


def test_every_object_carries_the_release_labels(value_set):
    for doc in render(value_set):
        labels = doc["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/instance") == "llm", doc["metadata"]["name"]
        assert labels.get("app.kubernetes.io/managed-by") == "Helm"


@pytest.mark.parametrize("bad, message", [
    ({"serve": {"engine": {"maxBatchSize": 0}}}, "maxBatchSize"),
    ({"serve": {"engine": {"maxBatchSise": 8}}}, "maxBatchSise"),
    ({"serve": {"engine": {"device": "tpu"}}}, "device"),
    ({"gpuWorkers": {"maxReplica": 2}}, "maxReplica"),
    ({"upgrade": {"strategy": "Recreate"}}, "strategy"),
])
def test_values_schema_refuses_bad_values(bad, message, tmp_path: Path):
    with pytest.raises(RenderError, match=message):
        render_text("default", extra=bad, tmp=tmp_path)


def test_chart_metadata_is_real_and_versioned():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == serve.__version__  # the image tag defaults to it (the one version source)
    assert all(part.isdigit() for part in chart["version"].split("."))
    assert chart["maintainers"] and all(m["name"] for m in chart["maintainers"])
    assert "example.invalid" not in (CHART / "Chart.yaml").read_text()  # no placeholder URLs


def test_the_chart_packages_and_the_package_renders(tmp_path):
    """`helm package` (as `make chart`) builds a versioned archive holding the generated files,
    and helm installs from that archive: it renders with the full values."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    result = subprocess.run([tool("helm"), "package", str(CHART), "--destination", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    archive = tmp_path / f"mistral-serve-{chart['version']}.tgz"
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    for needed in ("Chart.yaml", "values.yaml", "values.schema.json", "README.md", "templates/rayservice.yaml",
                   "files/alerts/rules.yaml", "files/dashboards/mistral-serve-service.json"):
        assert f"mistral-serve/{needed}" in names, needed
    rendered = subprocess.run([tool("helm"), "template", "llm", str(archive), "-f", str(VALUES / "full.yaml")],
                              capture_output=True, text=True, timeout=60)
    assert rendered.returncode == 0, rendered.stderr
    assert "kind: RayService" in rendered.stdout
