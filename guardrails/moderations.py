"""``POST /v1/moderations`` in the shape of OpenAI's Moderations API, backed by the input rails.

The response has OpenAI's 13 categories (always present, so clients that parse them work) plus the
categories of this service's rails: ``pii``, ``secrets``, ``prompt_injection``, ``jailbreak``,
``code_injection``, ``denied_topic`` and ``self-check`` (the served model's own judgement over the
Mistral 7B paper's categories, which says *that* an input is unsafe, not which OpenAI category).
Scores are 1.0 for deterministic findings, the signal strength for prompt injection, 0.0 when clean.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from .verdict import Verdict

OPENAI_CATEGORIES: tuple[str, ...] = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent",
    "self-harm", "self-harm/intent", "self-harm/instructions", "sexual", "sexual/minors", "violence",
    "violence/graphic",
)
MAX_INPUTS = 64


class ModerationRequest(BaseModel):
    """The request body; unknown fields are ignored, as for the other routes."""

    model_config = ConfigDict(extra="ignore")

    input: str | Annotated[list[str], Field(min_length=1, max_length=MAX_INPUTS)] = Field(
        description="A text or a list of texts to classify."
    )
    model: str | None = Field(default=None, description="Ignored: the caller's policy decides the rails.")

    def texts(self) -> list[str]:
        """The input(s) as a list."""
        return [self.input] if isinstance(self.input, str) else list(self.input)


class ModerationResult(BaseModel):
    """The classification of one input."""

    flagged: bool
    categories: dict[str, bool]
    category_scores: dict[str, float]
    category_applied_input_types: dict[str, list[Literal["text"]]]


class ModerationResponse(BaseModel):
    """The response body."""

    id: str
    model: str
    results: list[ModerationResult]


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
