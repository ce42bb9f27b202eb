"""templates/prometheusrule.yaml: the alert rules shipped as a PrometheusRule."""

from __future__ import annotations

import shutil
import subprocess

import yaml

from ops import alerts

from .conftest import find, one, render


def test_off_by_default():
    assert not find(render(), "PrometheusRule")


def test_ships_exactly_the_generated_rules_and_promtool_accepts_them(tmp_path):
    rule = one(render("full"), "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    assert rule["spec"] == alerts.rules()
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    result = subprocess.run([shutil.which("promtool") or "promtool", "check", "rules", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
