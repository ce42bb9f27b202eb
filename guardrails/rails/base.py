"""What a rail is: a named check that reports findings with spans on the text it is given.

Offline rails (patterns, checksums, YARA) are synchronous and microseconds-fast: they all scan the
same original text, so their spans line up and one pass of replacements masks them together.
Model-based and NeMo library rails are asynchronous and decide on the whole (already masked) text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

from ..verdict import Finding

# Zero-width and bidi-control characters that split words to slip past patterns.
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff\u00ad]")


@runtime_checkable
class OfflineRail(Protocol):
    """A rail that needs no model: a pure function of the text."""

    name: str

    def scan(self, text: str) -> list[Finding]:
        """Everything the rail finds in ``text``, with spans into ``text``."""
        ...

    def categories(self) -> Sequence[str]:
        """The moderation categories this rail can flag."""
        ...


def strip_invisible(text: str) -> str:
    """Removes zero-width characters; callers that need spans must not use the result for them."""
    return _INVISIBLE.sub("", text)


def apply_masks(text: str, findings: Iterable[Finding]) -> str:
    """Replaces the spans of masking findings; overlapping spans merge into the earliest one.

    NOTE: spans refer to ``text``; replacements are applied right to left so earlier offsets
    stay valid.
    """
    spans: list[tuple[int, int, str]] = []
    for f in sorted((f for f in findings if f.action == "mask" and f.has_span), key=lambda f: (f.start, -f.end)):
        if spans and f.start < spans[-1][1]:
            start, end, repl = spans[-1]
            spans[-1] = (start, max(end, f.end), repl)
        else:
            spans.append((f.start, f.end, f.replacement or ""))
    for start, end, repl in reversed(spans):
        text = text[:start] + repl + text[end:]
    return text
