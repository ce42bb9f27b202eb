"""Short modules and functions (the team's convention; docs/architecture.md): no module over 400 lines in serve/ or
guardrails/, no function over 60 lines."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def modules() -> list[Path]:
    return sorted(p for package in ("serve", "guardrails") for p in (ROOT / package).rglob("*.py"))


def long_functions(path: Path, root: Path = ROOT) -> list[str]:
    """``module:function (lines)`` of every function or method longer than the limit."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines = node.end_lineno - node.lineno + 1
            if lines > MAX_FUNCTION_LINES:
                found.append(f"{path.relative_to(root)}:{node.name} ({lines})")
    return found


def test_modules_are_short():
    long = {str(p.relative_to(ROOT)): n for p in modules() if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_functions_are_short():
    long = [f for p in modules() for f in long_functions(p)]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_the_check_finds_a_long_method_and_spares_a_short_one(tmp_path):
    body = "\n".join(f"        x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    path = tmp_path / "long.py"
    path.write_text(f"class C:\n    async def long(self):\n{body}\n\n    def short(self):\n        return 1\n")
    assert long_functions(path, tmp_path) == [f"long.py:long ({MAX_FUNCTION_LINES + 1})"]
