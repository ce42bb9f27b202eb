"""Verdicts of the input rails turned into ``POST /v1/moderations`` responses (OpenAI's shape).

The moderation layer returns verdicts only; this is the one place that maps them to the API. The
mapping is data-driven from :attr:`guardrails.verdict.Finding.category`: every category a rail
reports (OpenAI's names such as ``illicit/violent``, or this service's such as ``pii``,
``prompt_injection``, ``secrets``) becomes a key of the result, beside OpenAI's 13 categories, which
are always present so that clients parsing them work. Scores are the rails' scores (1.0 for
deterministic findings), 0.0 when clean.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from guardrails.verdict import Verdict

from ..protocol import OPENAI_CATEGORIES, ModerationResponse, ModerationResult


def moderation_result(verdict: Verdict) -> ModerationResult:
    """One result from the verdict of the input rails on one text."""
    flags = verdict.categories()
    categories = {name: False for name in OPENAI_CATEGORIES} | flags
    scores = {name: 0.0 for name in OPENAI_CATEGORIES} | {k: round(float(v), 4) for k, v in verdict.scores.items()}
    for name, flagged in flags.items():
        if flagged and scores.get(name, 0.0) == 0.0:
            scores[name] = 1.0
    return ModerationResult(
        flagged=verdict.flagged,
        categories=categories,
        category_scores={name: scores.get(name, 0.0) for name in categories},
        category_applied_input_types={name: ["text"] for name in categories},
    )


def moderation_response(verdicts: Sequence[Verdict], request_id: str | None = None) -> ModerationResponse:
    """The Moderations API response for the verdicts of one request (one per input, in order).

    The ``model`` field names the policy and its version (``guardrails/<policy>@<version>``).
    """
    if not verdicts:
        raise ValueError("a moderation response needs at least one verdict")
    first = verdicts[0]
    return ModerationResponse(
        id=request_id or f"modr-{uuid.uuid4().hex}",
        model=f"guardrails/{first.policy}@{first.policy_version}",
        results=[moderation_result(v) for v in verdicts],
    )
