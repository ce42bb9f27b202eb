"""A policy's denied topics: named lists of terms or phrases matched as whole words.

All terms of a policy become one compiled alternation, so the cost does not grow with the number
of topics. Whitespace inside a phrase matches any run of whitespace; matching ignores case.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from ..verdict import Finding, FindingAction

CATEGORY = "denied_topic"
REPLACEMENT = "[REDACTED]"


def _term_pattern(term: str) -> str:
    words = [re.escape(w) for w in term.split()]
    body = r"\s+".join(words)
    # Word boundaries only where the term starts or ends with a word character.
    head = r"\b" if re.match(r"\w", term.strip()) else ""
    tail = r"\b" if re.search(r"\w$", term.strip()) else ""
    return head + body + tail


class DeniedTermsRail:
    """Flags the terms of each denied topic.

    Args:
        topics: Topic name to its terms; the topic is reported as the finding's kind.
        action: ``block`` the text or ``mask`` the terms.
    """

    name = "denied_terms"

    def __init__(self, topics: Mapping[str, Sequence[str]], action: FindingAction = "block") -> None:
        self._action: FindingAction = action
        self._topics = [name for name, terms in topics.items() if terms]
        alternatives = []
        for index, name in enumerate(self._topics):
            terms = sorted({t.strip() for t in topics[name] if t.strip()}, key=len, reverse=True)
            alternatives.append(f"(?P<t{index}>" + "|".join(_term_pattern(t) for t in terms) + ")")
        self._pattern = re.compile("|".join(alternatives), re.I) if alternatives else None
        # A term can only match where its first word occurs: a substring test skips the regex.
        self._first_words = tuple(sorted({t.split()[0].lower() for n in self._topics for t in topics[n] if t.strip()}))

    def categories(self) -> Sequence[str]:
        """The one category this rail flags."""
        return (CATEGORY,)

    def scan(self, text: str) -> list[Finding]:
        """Every denied term found, with its topic as the kind."""
        if self._pattern is None:
            return []
        lowered = text.lower()
        if not any(word in lowered for word in self._first_words):
            return []
        return [
            Finding(self.name, CATEGORY, self._topics[int(m.lastgroup[1:])], self._action, *m.span(), REPLACEMENT)
            for m in self._pattern.finditer(text)
            if m.lastgroup is not None
        ]
