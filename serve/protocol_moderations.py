"""The OpenAI models of ``POST /v1/moderations`` (re-exported by :mod:`serve.protocol`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from .protocol_base import RequestModel

# OpenAI's moderation categories: always present in a result, so clients that parse them work.
OPENAI_CATEGORIES: tuple[str, ...] = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent",
    "self-harm", "self-harm/intent", "self-harm/instructions", "sexual", "sexual/minors", "violence",
    "violence/graphic",
)
MAX_MODERATION_INPUTS = 64


class ModerationRequest(RequestModel):
    """The ``POST /v1/moderations`` body; unknown fields are ignored, as for the other routes."""

    input: str | Annotated[list[str], Field(min_length=1, max_length=MAX_MODERATION_INPUTS)] = Field(
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
    """The ``POST /v1/moderations`` response body."""

    id: str
    model: str
    results: list[ModerationResult]
