"""A request's state inside the batching engine, and what it does with each chosen token."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch

from .constraints import JsonConstraint, Penalties
from .text import IncrementalDetokenizer, StopStringFilter
from .types import EngineOutput, EngineRequest, TokenLogprob

Sink = Callable[[EngineOutput], object]  # its return value is ignored


@dataclass(eq=False)
class Sequence:
    """One request in the engine (touched only by the engine thread, but ``cancelled``).

    Attributes:
        slot: Its KV slot while it holds one, else -1.
        cached: Tokens whose keys/values are in its slot (prompt first, then completion).
        output_ids: Completion tokens so far (what logits processors see).
    """

    request: EngineRequest
    sink: Sink
    detokenizer: IncrementalDetokenizer
    stop_filter: StopStringFilter
    generator: torch.Generator | None
    constraint: JsonConstraint | None = None  # constrained decoding (SamplingParams.json_schema)
    penalties: Penalties | None = None  # presence/frequency penalties
    slot: int = -1
    cached: int = 0
    output_ids: list[int] = field(default_factory=list)
    finish_reason: str | None = None
    cancelled: bool = False
    # Metrics (see telemetry.py): monotonic times of submission and of the latest token.
    submitted_at: float = 0.0
    last_token_at: float = 0.0

    @property
    def generated(self) -> int:
        """Completion tokens so far."""
        return len(self.output_ids)

    @property
    def last_token(self) -> int:
        """The token the next decode step feeds."""
        return self.output_ids[-1]

    @property
    def prompt_left(self) -> int:
        """Prompt tokens not yet in the cache."""
        return max(0, len(self.request.prompt_token_ids) - self.cached)

    @property
    def holds_eos(self) -> bool:
        """Whether the end-of-sequence token is still forbidden (``min_tokens`` not reached)."""
        return self.generated < self.request.sampling.min_tokens


def next_output(sequence: Sequence, token: int, logprob: TokenLogprob | None, *, is_eos: bool,
                max_model_len: int) -> EngineOutput:
    """Records a chosen token and returns the output it makes (``finish_reason`` set when it ends).

    Args:
        sequence: The sequence the token belongs to.
        token: The chosen token id.
        logprob: Its log-probability entry, when the request asked for them.
        is_eos: Whether the token ends sequences (and ``ignore_eos`` is off).
        max_model_len: The context limit.
    """
    params = sequence.request.sampling
    sequence.output_ids.append(token)
    logprobs = None if logprob is None else [logprob]
    if is_eos and not sequence.holds_eos:
        return EngineOutput(sequence.stop_filter.flush(), 1, "stop", [token], logprobs)
    text = sequence.detokenizer.push(token)
    text, stopped = sequence.stop_filter.feed(text, allow_stop=sequence.generated >= params.min_tokens)
    if stopped:
        return EngineOutput(text, 1, "stop", [token], logprobs)
    if sequence.generated >= params.max_tokens or sequence.cached + 1 >= max_model_len:
        return EngineOutput(text + sequence.stop_filter.flush(), 1, "length", [token], logprobs)
    return EngineOutput(text, 1, None, [token], logprobs)


def on_token_telemetry(sequence: Sequence, telemetry) -> None:
    """Reports the time since the sequence's previous token (or its submission) to telemetry."""
    if telemetry is None:
        return
    now = time.monotonic()
    first = sequence.generated == 1
    telemetry.on_token(now - (sequence.submitted_at if first else sequence.last_token_at), first)
    sequence.last_token_at = now


def eos_token_ids(model, tokenizer) -> Iterable[int]:
    """Every end-of-sequence token id the model's generation config or its tokenizer names."""
    ids: set[int] = set()
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (configured, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif value:
            ids.update(value)
    return ids


class GenerationHandle:
    """Lets the submitter cancel its sequence; the engine drops it before the next token."""

    def __init__(self, sequence: Sequence, wake: Callable[[], None]) -> None:
        self._sequence = sequence
        self._wake = wake  # wakes the engine thread, which drops the sequence

    def cancel(self) -> None:
        """Stops generating; no more outputs are delivered (safe from any thread)."""
        self._sequence.cancelled = True
        self._wake()
