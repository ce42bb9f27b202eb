"""Secrets and credentials: provider API keys, private keys, tokens, passwords in assignments.

Provider keys have fixed prefixes and lengths, so their patterns are precise. Generic assignments
(``password = ...``, ``api_key: ...``) are only reported when the value looks like a real secret:
long enough, mixing character classes, not a placeholder or a variable reference, which is what
lets code samples such as ``password = getpass()`` or ``API_KEY=<your key>`` through.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

from ..verdict import Finding, FindingAction

CATEGORY = "secrets"
REPLACEMENT = "[SECRET]"

# (kind, literal prefixes, pattern): prefixes and lengths as the providers document them. A pattern
# only runs when one of its literal prefixes occurs in the text (a substring test is ~100x cheaper).
_PROVIDER_PATTERNS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    # NOTE: without an END line the key runs to the end of the text (a stream holds it back whole).
    ("private_key", ("-----BEGIN",), r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
     r"(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|[\s\S]*)"),
    ("aws_access_key", ("AKIA", "ASIA", "ABIA", "ACCA"), r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b"),
    ("github_token", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
     r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"),
    ("gitlab_token", ("glpat-",), r"\bglpat-[A-Za-z0-9_-]{20,}"),
    ("openai_key", ("sk-",), r"\bsk-(?:proj-|svcacct-|admin-|ant-(?:api|admin)\d\d-)?[A-Za-z0-9_-]{20,}"),
    ("slack_token", ("xox",), r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    ("stripe_key", ("_live_", "_test_"), r"\b[rsp]k_(?:live|test)_[A-Za-z0-9]{16,}"),
    ("google_api_key", ("AIza",), r"\bAIza[0-9A-Za-z_-]{35}"),
    ("huggingface_token", ("hf_",), r"\bhf_[A-Za-z0-9]{30,}"),
    ("npm_token", ("npm_",), r"\bnpm_[A-Za-z0-9]{36}\b"),
    ("pypi_token", ("pypi-",), r"\bpypi-AgE[A-Za-z0-9_-]{50,}"),
    ("jwt", ("eyJ",), r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    ("bearer_token", ("earer",), r"\b[Bb]earer\s+[A-Za-z0-9._~+/-]{20,}=*"),
    ("slack_webhook", ("hooks.slack.com",), r"https://hooks\.slack\.com/services/[A-Za-z0-9/]{20,}"),
)
_PROVIDERS = tuple((kind, prefixes, re.compile(pattern)) for kind, prefixes, pattern in _PROVIDER_PATTERNS)

_ASSIGNMENT_TRIGGERS = ("pass", "pwd", "secret", "key", "token")
_ASSIGNMENT = re.compile(
    r"(?i:password|passwd|pwd|passphrase|secret|secret[_-]?key|api[_-]?key|apikey|access[_-]?key"
    r"|access[_-]?token|auth[_-]?token|client[_-]?secret|private[_-]?key|token)"
    r"[\"']?\s*(?:[:=]|:=|=>)\s*[\"']?(?P<value>[^\s\"',;]{8,})"
)
_URL_CREDENTIALS = re.compile(r"\b[a-z][a-z0-9+.-]{1,20}://[^\s:/@]{1,64}:(?P<value>[^\s@/]{3,128})@[^\s/]+")

_PLACEHOLDER = re.compile(
    r"^(?:<.*>|\$\{?.*|\{\{?.*|%.*%|\*+|x+|\.+|(?i:.*(?:your|example|placeholder|changeme|redacted|dummy|secret"
    r"|password|passwd|xxxx|token|api_?key|here|env|getpass|input|os\.|process\.|config\.|settings\.|vault).*))$"
)


def shannon_entropy(value: str) -> float:
    """Bits per character of ``value``."""
    counts = Counter(value)
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _char_classes(value: str) -> int:
    return sum(
        (any(c.islower() for c in value), any(c.isupper() for c in value), any(c.isdigit() for c in value),
         any(not c.isalnum() for c in value))
    )


def looks_secret(value: str) -> bool:
    """Whether an assigned value is plausibly a real credential rather than code or a placeholder."""
    if _PLACEHOLDER.match(value) or "(" in value or "[" in value:
        return False
    entropy = shannon_entropy(value)
    return _char_classes(value) >= 3 and entropy >= 3.0 or len(value) >= 20 and entropy >= 3.5


def _url_password(value: str) -> bool:
    """A password in a URL needs less evidence: the ``user:password@host`` form says what it is."""
    return not _PLACEHOLDER.match(value) and len(value) >= 6 and _char_classes(value) >= 2


class SecretsRail:
    """Finds credentials and blocks (or masks) them.

    Args:
        action: What a found secret does to the text.
        generic: Also report ``name = value`` assignments and credentials in URLs.
    """

    name = "secrets"

    def __init__(self, action: FindingAction = "block", generic: bool = True) -> None:
        self._action: FindingAction = action
        self._generic = generic

    def categories(self) -> Sequence[str]:
        """The one category this rail flags."""
        return (CATEGORY,)

    def scan(self, text: str) -> list[Finding]:
        """Every credential found, with its span."""
        found = [
            Finding(self.name, CATEGORY, kind, self._action, m.start(), m.end(), REPLACEMENT)
            for kind, prefixes, pattern in _PROVIDERS
            if any(p in text for p in prefixes)
            for m in pattern.finditer(text)
        ]
        if self._generic:
            lowered = text.lower()
            checks = []
            if ("=" in text or ":" in text) and any(t in lowered for t in _ASSIGNMENT_TRIGGERS):
                checks.append((_ASSIGNMENT, "assigned_secret", looks_secret))
            if "://" in text and "@" in text:
                checks.append((_URL_CREDENTIALS, "url_credentials", _url_password))
            for pattern, kind, plausible in checks:
                for m in pattern.finditer(text):
                    start, end = m.span("value")
                    if plausible(m.group("value")) and not any(f.start <= start < f.end for f in found):
                        found.append(Finding(self.name, CATEGORY, kind, self._action, start, end, REPLACEMENT))
        found.sort(key=lambda f: f.start)
        return found
