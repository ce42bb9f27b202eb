"""Moderation outcomes as values: what each rail found, and the verdict on a whole text.

They are plain frozen dataclasses because Ray pickles them between the Moderation deployment and
the gateway. A verdict never carries exception text: a rail that broke is recorded by name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

Action = Literal["allowed", "blocked", "masked"]
Direction = Literal["input", "output"]
FindingAction = Literal["block", "mask"]


@dataclass(frozen=True)
class Finding:
    """One thing a rail found in a text.

    Attributes:
        rail: The rail that found it (e.g. ``personal_data``).
        category: What it is, in the moderation taxonomy (e.g. ``pii``, ``illicit/violent``); see
            :mod:`serve.gateway.moderation_results` for how categories map to the Moderations API.
        kind: The finer kind (``email``, ``aws_access_key``, ``override`` ...), for audit.
        action: ``block`` stops the text; ``mask`` replaces the span with ``replacement``.
        start: Start offset in the checked text (``-1`` when the rail reports no span).
        end: End offset (exclusive) in the checked text (``-1`` without a span).
        replacement: What a masked span becomes (``[EMAIL]``); ``""`` removes it.
        score: The rail's confidence in ``[0, 1]``.
    """

    rail: str
    category: str
    kind: str
    action: FindingAction
    start: int = -1
    end: int = -1
    replacement: str | None = None
    score: float = 1.0

    @property
    def has_span(self) -> bool:
        """Whether the finding says where it is in the text."""
        return 0 <= self.start <= self.end


@dataclass(frozen=True)
class Verdict:
    """The outcome of running a policy's rails on one text.

    Attributes:
        action: ``allowed``, ``blocked`` or ``masked``.
        rail: The rail that decided: the first blocking rail in policy order, or the first
            masking one; ``None`` when allowed.
        text: The text to use downstream: masked when ``action == "masked"``, else the input.
        policy: Name of the policy applied.
        policy_version: Version (content hash) of that policy.
        direction: ``input`` or ``output``.
        findings: Everything the rails found (blocking and masking), in text order.
        scores: Highest score per category (every category the policy checks, 0.0 if clean).
        failed_rails: Rails that raised or timed out; each was handled per its ``on_error``.
        failed: True when the verdict is a block synthesized because a fail-closed rail broke
            (not because the content was judged unsafe).
    """

    action: Action
    rail: str | None
    text: str
    policy: str
    policy_version: str
    direction: Direction
    findings: tuple[Finding, ...] = ()
    scores: Mapping[str, float] = field(default_factory=dict)
    failed_rails: tuple[str, ...] = ()
    failed: bool = False

    @property
    def allowed(self) -> bool:
        """Whether the text may be used (possibly masked)."""
        return self.action != "blocked"

    @property
    def blocked(self) -> bool:
        """Whether the text must not be used."""
        return self.action == "blocked"

    @property
    def flagged(self) -> bool:
        """Whether any rail found anything (the Moderations API's ``flagged``)."""
        return self.action != "allowed" or bool(self.findings)

    def categories(self) -> dict[str, bool]:
        """Each checked category and whether it was flagged."""
        flagged = {f.category for f in self.findings}
        if self.failed:
            flagged.add("moderation-error")
        elif self.rail is not None and self.blocked and not flagged:
            flagged.add(self.rail)
        names = set(self.scores) | flagged
        return {name: name in flagged for name in sorted(names)}


def first_blocked(verdicts: Iterable[Verdict]) -> Verdict | None:
    """The first blocked verdict of several (e.g. of the messages of one chat request)."""
    return next((v for v in verdicts if v.blocked), None)
