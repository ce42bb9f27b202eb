"""Checks a deployment file and describes each problem on one line (``mistral-serve config validate``).

A line reads ``FILE:LINE: dotted.path: what is wrong``, with the line where the offending
value (or, for a missing or unknown field, its section) is written; no pydantic traceback.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .config import AppConfig


class ConfigError(ValueError):
    """A deployment file that cannot be used; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def load_checked(path: str | Path) -> AppConfig:
    """Reads a deployment file like :func:`serve.config.load_config`.

    Raises:
        ConfigError: the file is missing, not YAML, or not a valid deployment (all problems).
    """
    config, problems = _check(Path(path))
    if config is None:
        raise ConfigError(problems)
    return config


def config_problems(path: str | Path) -> list[str]:
    """One line per problem of the deployment file at ``path``; empty when it is valid."""
    return _check(Path(path))[1]


def _check(path: Path) -> tuple[AppConfig | None, list[str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        return None, [f"{path}: cannot read: {error.strerror or error}"]
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        return None, [f"{where}: not valid YAML: {getattr(error, 'problem', None) or error}"]
    if not isinstance(data, dict):
        return None, [f"{path}:1: expected a mapping of sections (model, engine, gateway, ...), "
                      f"got {type(data).__name__}"]
    try:
        return AppConfig.model_validate(data), []
    except ValidationError as error:
        described = [_describe(path, root, problem) for problem in error.errors()]
        # In the file's order, as an editor would walk them.
        return None, [text for _, text in sorted(described, key=lambda item: item[0] or 0)]


def _describe(path: Path, root: yaml.Node | None, problem: Any) -> tuple[int | None, str]:
    loc = [part for part in problem["loc"] if not str(part).startswith("function-after")]
    dotted = ".".join(str(part) for part in loc) or "(top level)"
    line = _line(root, loc)
    where = f"{path}:{line}" if line else str(path)
    message = problem["msg"].removeprefix("Value error, ")
    if problem["type"] == "extra_forbidden":
        message = "unknown field" + _suggestion(loc)
    elif problem["type"] == "missing":
        message = "required field missing"
    elif not isinstance(problem.get("input"), dict | list):
        message += f" (got {problem['input']!r})"
    return line, f"{where}: {dotted}: {message}"


def _line(root: yaml.Node | None, loc: list[Any]) -> int | None:
    """1-based line of the deepest node of ``loc`` present in the document."""
    node, line = root, (root.start_mark.line + 1 if root is not None else None)
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            found = [(k, v) for k, v in node.value if k.value == str(part)]
            if not found:
                break
            key, node = found[0]
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _suggestion(loc: list[Any]) -> str:
    """`` (did you mean X?)`` when the unknown field is close to a field of its section."""
    model: type[BaseModel] | None = AppConfig
    for part in loc[:-1]:
        field = model.model_fields.get(str(part)) if model else None
        annotation = field.annotation if field else None
        model = next((arg for arg in getattr(annotation, "__args__", (annotation,))
                      if isinstance(arg, type) and issubclass(arg, BaseModel)), None)
    if model is None:
        return ""
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1)
    return f" (did you mean {close[0]}?)" if close else ""
