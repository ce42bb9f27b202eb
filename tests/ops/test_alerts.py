"""The alert rules: generated, valid for promtool, unit-tested per alert, each with a runbook."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from ops import alerts

TESTS = alerts.ROOT / "ops" / "alerts" / "tests.yaml"


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed: run `bash ops/tools/install.sh` (make test does)")
    return path


def test_rule_files_are_generated():
    assert alerts.RULES.read_text() == alerts.rules_text(), "regenerate: python -m ops.alerts"
    assert alerts.CHART_RULES.read_text() == alerts.rules_text(chart=True), "regenerate: python -m ops.alerts"


def test_promtool_checks_the_rules():
    result = subprocess.run([promtool(), "check", "rules", str(alerts.RULES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts.ALERTS)} rules found" in result.stdout


def test_promtool_unit_tests_pass():
    result = subprocess.run([promtool(), "test", "rules", str(TESTS)], capture_output=True, text=True,
                            cwd=TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_quiet_unit_test():
    firing, quiet = set(), set()
    for case in yaml.safe_load(TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    names = {a.name for a in alerts.ALERTS}
    assert names <= firing, names - firing
    assert names <= quiet, names - quiet


def test_every_alert_has_a_runbook_that_names_it():
    index = (alerts.RUNBOOKS / "README.md").read_text()
    for alert in alerts.ALERTS:
        page = alerts.RUNBOOKS / f"{alert.runbook}.md"
        assert page.is_file(), page
        assert page.read_text().startswith(f"# {alert.name}\n")
        assert alert.name in index
        assert alert.severity in ("warning", "critical")


def test_every_aggregation_keeps_the_namespace_and_release():
    """Two releases in one Prometheus never mix: no `sum`/`max` drops namespace or release."""
    import re

    for alert in alerts.ALERTS:
        for match in re.finditer(r"\b(sum|max|min|avg)\b\s*(by\s*\(([^)]*)\))?", alert.expr):
            assert match.group(3) and {"namespace", "release"} <= {s.strip() for s in match.group(3).split(",")}, \
                f"{alert.name}: {match.group(0)}"


def test_the_chart_copy_matches_its_release_in_every_selector():
    from ops.alerts.promql import METRIC

    for rule in yaml.safe_load(alerts.CHART_RULES.read_text())["groups"][0]["rules"]:
        selectors = [m.group(2) or "" for m in METRIC.finditer(rule["expr"])]
        assert selectors and all(s.startswith('{namespace="__RELEASE_NAMESPACE__", release="__RELEASE_NAME__"')
                                 for s in selectors), rule["alert"]
