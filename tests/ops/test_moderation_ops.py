"""The moderation ops tools: the evaluation report and the benchmark run (no timing limits)."""

from __future__ import annotations

import json

from ops.moderation import bench, evaluate


def test_evaluation_meets_the_recorded_quality(tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert evaluate.main(["--json", str(out), "--errors"]) == 0
    report = json.loads(out.read_text())
    overall = report["overall"]
    # Recorded in the closing note of the moderation issue; a drop here is a regression of the rails.
    assert overall["precision"] >= 0.95 and overall["recall"] >= 0.95 and overall["false_block_rate"] <= 0.05
    categories = {"personal-data", "secrets", "prompt-injection", "code-injection", "denied-topic"}
    assert set(report["categories"]) == categories
    printed = capsys.readouterr().out
    assert "false-block rate" in printed and "precision" in printed


def test_evaluation_of_the_holdout_set_runs(capsys):
    assert evaluate.main(["--data", str(evaluate.HOLDOUT), "--policy", "permissive"]) == 0
    assert "policy permissive" in capsys.readouterr().out


def test_bench_reports_every_path_with_ratios(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.main(["--iterations", "3", "--nemo-iterations", "2", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    paths = {(r["check"].strip(), r["path"]) for r in rows}
    assert ("all offline input rails (clean)", "direct: Moderator") in paths
    assert ("code_injection (output)", "NeMo IORails.check_async") in paths
    assert all(r["p50_ms"] > 0 and r["p99_ms"] >= r["p50_ms"] for r in rows)
    assert all(r["ratio_vs_direct"] > 0 for r in rows if r["path"].startswith("NeMo"))
