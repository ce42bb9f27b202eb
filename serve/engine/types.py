"""Values that cross the boundary between the gateway and the engine.

They are plain dataclasses because Ray pickles them between processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    import torch

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
        min_tokens: Completion tokens before the end-of-sequence token or a stop string may end
            the sequence (the end-of-sequence token is masked out until then).
        logprobs: Return the chosen token's log-probability and this many top alternatives per
            token (0: the chosen token's only); None: no log-probabilities.
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
    min_tokens: int = 0
    logprobs: int | None = None
    json_schema: str | None = None
    logit_bias: tuple[tuple[int, float], ...] = ()
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    show_token_ids: tuple[int, ...] = ()


class LogitsProcessor(Protocol):
    """Changes one sequence's next-token scores before sampling (constraints, penalties, biases).

    Called on the engine thread once per generated token with the sequence's completion token
    ids so far and its ``[vocab]`` float logits row (a view into the batch: modify it in place or
    return a new tensor). It must be picklable (it crosses Ray with the request) and cheap: it
    runs inside the decode step of every sequence of the batch. An exception fails only its
    sequence (finish reason ``error``).
    """

    def __call__(self, output_token_ids: Sequence[int], logits: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class EngineRequest:
    """One sequence to generate: an already tokenized prompt and its sampling parameters.

    Attributes:
        logits_processors: Applied in order to this sequence's logits before each sample.
    """

    request_id: str
    prompt_token_ids: tuple[int, ...]
    sampling: SamplingParams
    logits_processors: tuple[LogitsProcessor, ...] = ()


@dataclass(frozen=True)
class TokenLogprob:
    """A generated token's log-probability and the most likely alternatives at its position.

    Log-probabilities are of the distribution the sequence sampled from after its logits
    processors, before temperature and top-p (what OpenAI reports).
    """

    token_id: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()


@dataclass
class EngineOutput:
    """An increment of one sequence's output.

    Attributes:
        text: New text since the previous output (may be empty).
        num_tokens: New completion tokens since the previous output.
        finish_reason: Set on the last output of the sequence.
        token_ids: The new completion token ids (engine outputs only; gateway-made outputs may
            leave it empty).
        logprobs: One entry per new token when the request asked for log-probabilities.
    """

    text: str = ""
    num_tokens: int = 0
    finish_reason: EngineFinishReason | None = None
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] | None = None

    def merge(self, other: EngineOutput) -> None:
        """Appends a later increment to this one (used to coalesce outputs)."""
        self.text += other.text
        self.num_tokens += other.num_tokens
        self.finish_reason = other.finish_reason
        self.token_ids = self.token_ids + other.token_ids
        if other.logprobs is not None:
            self.logprobs = (self.logprobs or []) + other.logprobs


@dataclass
class EngineStats:
    """Counters of one engine, for tests, readiness and metrics."""

    running: int = 0
    waiting: int = 0
    started: int = 0
    finished: dict[str, int] = field(default_factory=dict)
    steps: int = 0
    kv_cache_used_bytes: int = 0
    kv_cache_capacity_bytes: int = 0
    prefix_cache_bytes: int = 0
    prefix_cache_hit_tokens: int = 0
