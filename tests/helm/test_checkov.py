"""Security scan of the rendered chart with checkov (skips justified in tests/helm/checkov.yaml).

checkov knows Kubernetes' own kinds; the RayService's pod templates (a CRD) are held to the
same rules by test_rayservice.py (non-root, no privilege escalation, dropped capabilities,
read-only root filesystem, probes, resources, no token automount).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from .conftest import VALUE_SETS, render_text, tool


def test_checkov_passes_on_every_value_set(tmp_path: Path):
    for value_set in VALUE_SETS:
        (tmp_path / f"{value_set}.yaml").write_text(render_text(value_set))
    result = subprocess.run(
        [tool("checkov"), "--config-file", str(Path(__file__).with_name("checkov.yaml")),
         "-d", str(tmp_path), "-o", "json"],
        capture_output=True, text=True, timeout=300,
    )
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [f"{c['check_id']} {c['resource']} ({c['file_path']})"
              for r in reports for c in r["results"].get("failed_checks", [])]
    assert not failed, "\n".join(failed)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = reports[0]["summary"]
    assert summary["parsing_errors"] == 0
    assert summary["resource_count"] >= 30 and summary["passed"] > 200  # it really scanned them
