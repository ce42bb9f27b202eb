"""Values that cross the boundary between the gateway and the engine.

They are plain dataclasses because Ray pickles them between processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# content_filter: set by the gateway's output rails on a choice they cut (the engine never sets it).
EngineFinishReason = Literal["stop", "length", "cancelled", "error", "content_filter"]


@dataclass(frozen=True)
class SamplingParams:
    """How to pick tokens for one sequence.

    Attributes:
        max_tokens: Completion tokens to generate at most.
        temperature: 0 means greedy decoding.
        top_p: Nucleus sampling mass (1.0 disables it).
        seed: Seeds this sequence's own random generator, so its samples do not depend on what
            else shares the batch.
        stop: Strings that end the completion; they are not part of the returned text.
        ignore_eos: Keep generating past the end-of-sequence token (benchmarks only).
        json_schema: A JSON schema (as JSON text) the completion must match: constrained decoding
            (:mod:`serve.engine.constraints`) masks every token that would leave it.
        logit_bias: ``(token id, bias)`` pairs added to the scores before sampling (OpenAI's
            ``logit_bias``: -100 bans a token, 100 all but forces it).
        presence_penalty: OpenAI's, over the generated tokens (0 disables it).
        frequency_penalty: OpenAI's, over the generated tokens (0 disables it).
        show_token_ids: Control tokens written into the text instead of being skipped (e.g.
            Mistral's ``[TOOL_CALLS]``, which tells a tool call from an answer).
    """

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False
    json_schema: str | None = None
    logit_bias: tuple[tuple[int, float], ...] = ()
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    show_token_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class EngineRequest:
    """One sequence to generate: an already tokenized prompt and its sampling parameters."""

    request_id: str
    prompt_token_ids: tuple[int, ...]
    sampling: SamplingParams


@dataclass
class EngineOutput:
    """An increment of one sequence's output.

    Attributes:
        text: New text since the previous output (may be empty).
        num_tokens: New completion tokens since the previous output.
        finish_reason: Set on the last output of the sequence.
    """

    text: str = ""
    num_tokens: int = 0
    finish_reason: EngineFinishReason | None = None

    def merge(self, other: EngineOutput) -> None:
        """Appends a later increment to this one (used to coalesce outputs)."""
        self.text += other.text
        self.num_tokens += other.num_tokens
        self.finish_reason = other.finish_reason


@dataclass
class EngineStats:
    """Counters of one engine, for tests, readiness and metrics."""

    running: int = 0
    waiting: int = 0
    started: int = 0
    finished: dict[str, int] = field(default_factory=dict)
    steps: int = 0
