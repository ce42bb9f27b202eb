"""The prepared GPU script runs end to end (``--dry-run-cpu``) and imports nothing that needs Ray."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "ops" / "gpu" / "mistral7b_decode.py"

# Runs the script as `python ops/gpu/mistral7b_decode.py --dry-run-cpu` would, then reports which
# of the packages a CUDA box without the project's install lacks were imported along the way.
_DRIVER = """
import runpy, sys
sys.argv = [sys.argv[1], "--dry-run-cpu"]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as exit_:
    assert not exit_.code, exit_.code
absent_on_gpu_box = ("ray", "redis", "fastapi", "nemoguardrails", "pydantic_settings")
print("IMPORTED:", sorted(m for m in sys.modules if m.split(".")[0] in absent_on_gpu_box))
"""


def test_dry_run_reports_every_concurrency_level_without_ray(tmp_path):
    # Run from an unrelated directory: the script must find this checkout's `serve` by itself.
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", _DRIVER, str(SCRIPT)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert "IMPORTED: []" in lines, result.stdout

    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["concurrency", "prefill_s"])
    columns = lines[header].split()
    rows = [dict(zip(columns, line.split())) for line in lines[header + 1 : header + 5]]
    assert [int(row["concurrency"]) for row in rows] == [1, 8, 32, 64]
    for row in rows:
        assert float(row["decode_tok/s"]) > 0
        assert float(row["e2e_tok/s"]) > 0
        assert float(row["bound_tok/s"]) > 0
    assert "transformers:" in result.stdout and "peak_memory_GB:" in result.stdout


def test_dry_run_measures_each_quantization_mode(tmp_path):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run-cpu", "--quantization", "none,int8", "--concurrency", "1,8"],
        cwd=tmp_path, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["concurrency", "prefill_s"])
    rows = [line.split() for line in lines[header + 1 : header + 5]]
    assert [(int(r[0]), r[-1]) for r in rows] == [(1, "none"), (8, "none"), (1, "int8"), (8, "int8")]
    assert all(float(r[2]) > 0 for r in rows)
    # int8 weights are about a quarter of fp32 ones: the bound per step rises accordingly.
    assert "weights_GB_per_decode_step_int8:" in result.stdout
