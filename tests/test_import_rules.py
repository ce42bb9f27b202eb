"""The import rules of docs/architecture.md hold, and a change that crosses a seam fails.

The rules are import-linter contracts in pyproject.toml; ``make test`` (and so CI) runs them here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture
def copy_of_the_tree(tmp_path):
    """The two packages and pyproject.toml, copied: crossing a seam there leaves the repo alone."""
    for package in ("serve", "guardrails"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def test_the_contracts_are_kept():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "source", "contract"), [
    ("serve/engine/leak.py", "from serve.errors import APIError\n", "The engine imports nothing"),
    ("guardrails/leak.py", "import serve.config\n", "The moderation layer imports nothing from serve"),
    ("serve/tenancy/leak.py", "from serve.gateway import pipeline\n", "The gateway composes"),
    ("serve/gateway/leak.py", "from guardrails.moderator import Moderator\n", "The gateway reaches moderation"),
    ("serve/engine/api_leak.py", "from serve.engine import client\n", None),
])
def test_a_crossing_import_breaks_a_contract(copy_of_the_tree, module, source, contract):
    path = copy_of_the_tree / module
    path.write_text(f'"""A deliberate seam crossing."""\n\n{source}')
    if contract is None:  # the engine API itself must stay small
        (copy_of_the_tree / "serve/engine/api.py").write_text(
            (copy_of_the_tree / "serve/engine/api.py").read_text() + "\nfrom .api_leak import client  # noqa\n")
        contract = "The engine interface carries"
    result = lint_imports(copy_of_the_tree)
    assert result.returncode != 0
    broken = [line for line in result.stdout.splitlines() if "BROKEN" in line]
    assert any(contract in line for line in broken) or contract in result.stdout.split("Broken contracts")[-1], \
        result.stdout
