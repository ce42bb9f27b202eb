"""Code and markup injection in outputs, with NeMo Guardrails' YARA rules compiled once.

The policy configures it exactly as NeMo's ``injection detection`` output flow:
``rails.config.injection_detection`` with ``injections`` (rule names), ``action`` (``reject`` blocks,
``omit`` strips the matched strings), ``yara_path`` and ``yara_rules``. NeMo's own action compiles
the rules on every call; this rail compiles them when the policy loads and reports each matched
string's span, so a stream can hold back exactly the text that matched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import yara
from nemoguardrails.library.injection_detection.actions import YARA_DIR

from ..verdict import Finding, FindingAction

CATEGORY = "code_injection"


def compile_rules(
    names: Sequence[str], inline: Mapping[str, str] | None = None, directory: Path | None = None
) -> yara.Rules:
    """Compiles the named rule sets: inline sources first, then ``directory/<name>.yara``.

    ``directory`` defaults to the rules NeMo Guardrails ships (``sqli``, ``template``, ``code``, ``xss``).

    Raises:
        ValueError: a rule set is missing or does not compile.
    """
    if not names:
        raise ValueError("injection_detection.injections names no rule sets")
    directory = directory or Path(YARA_DIR)
    sources = {}
    for name in names:
        if inline and name in inline:
            sources[name] = inline[name]
            continue
        path = directory / f"{name}.yara"
        if not path.is_file():
            raise ValueError(f"YARA rule set {name!r} not found: neither in yara_rules nor at {path}")
        sources[name] = path.read_text(encoding="utf-8")
    try:
        return yara.compile(sources=sources)
    except yara.Error as exc:
        raise ValueError(f"YARA rules do not compile: {exc}") from None


class CodeInjectionRail:
    """Blocks (``reject``) or strips (``omit``) text matched by YARA injection rules.

    Args:
        rules: Compiled rules (see :func:`compile_rules`).
        action: ``block`` for NeMo's ``reject``, ``mask`` for ``omit``.
    """

    name = "code_injection"

    def __init__(self, rules: yara.Rules, action: FindingAction = "block") -> None:
        self._rules = rules
        self._action: FindingAction = action

    def categories(self) -> Sequence[str]:
        """The one category this rail flags."""
        return (CATEGORY,)

    def scan(self, text: str) -> list[Finding]:
        """One finding per matched string instance, kind ``<rule set>.<rule>``."""
        data = text.encode("utf-8")
        ascii_only = len(data) == len(text)
        found = []
        for match in self._rules.match(data=data):
            kind = f"{match.namespace}.{match.rule}"
            for string in match.strings:
                for instance in string.instances:
                    start, end = instance.offset, instance.offset + instance.matched_length
                    if not ascii_only:  # YARA offsets are bytes; spans are characters
                        start = len(data[:start].decode("utf-8", "ignore"))
                        end = len(data[:end].decode("utf-8", "ignore"))
                    found.append(Finding(self.name, CATEGORY, kind, self._action, start, end, ""))
        found.sort(key=lambda f: (f.start, f.end))
        return found
