"""templates/prometheusrule.yaml: the alert rules shipped as a PrometheusRule, scoped to the
release (namespace and release label matchers in every selector)."""

from __future__ import annotations

import shutil
import subprocess

import yaml

from ops import alerts

from .conftest import NAMESPACE, RELEASE, find, one, render


def test_off_by_default():
    assert not find(render(), "PrometheusRule")


def _promtool() -> str:
    return shutil.which("promtool") or "promtool"


def test_ships_the_generated_rules_scoped_to_the_release_and_promtool_accepts_them(tmp_path):
    rule = one(render("full"), "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    assert rule["spec"] == alerts.rules(f'namespace="{NAMESPACE}", release="{RELEASE}"')
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    result = subprocess.run([_promtool(), "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rendered_rules_alert_only_on_their_own_release(tmp_path):
    """promtool evaluates the rendered rules: the same failing traffic fires for this release and
    stays quiet for a release of the same name in another namespace or another release here."""
    spec = one(render("full"), "PrometheusRule")["spec"]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(spec))
    series = 'ray_mistral_serve_moderation_fail_open_total{{namespace="{ns}", release="{rel}", rail="output", policy="default"}}'
    cases = []
    for ns, rel, fires in ((NAMESPACE, RELEASE, True), ("staging", RELEASE, False), (NAMESPACE, "other", False)):
        expected = [{"exp_labels": {"namespace": ns, "release": rel, "severity": "critical", "service": "mistral-serve",
                                    "rail": "output", "policy": "default"},
                     "exp_annotations": {
                         "summary": "Moderation let content through unchecked (fail-open)",
                         "description": "output checks of policy default could not run and let content through "
                                        "in the last 5 minutes.",
                         "runbook": "ops/runbooks/moderation-fail-open.md"}}] if fires else []
        cases.append({"interval": "1m", "input_series": [{"series": series.format(ns=ns, rel=rel), "values": "0 0 3 3 3"}],
                      "alert_rule_test": [{"eval_time": "3m", "alertname": "MistralServeModerationFailOpen",
                                           "exp_alerts": expected}]})
    tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": cases}
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    result = subprocess.run([_promtool(), "test", "rules", "tests.yaml"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
