"""Constrained decoding: per-sequence token masks that keep a completion inside a JSON schema.

The grammar engine is llguidance (the library mistral-common's own guidance uses). The gateway
turns ``response_format`` and forced tool choices into a JSON schema
(:attr:`serve.engine.types.SamplingParams.json_schema`); each constrained sequence gets a
:class:`JsonConstraint`, whose :meth:`~JsonConstraint.mask` is applied to its row of the batch's
logits before sampling and whose :meth:`~JsonConstraint.accept` follows each sampled token. When
the JSON is complete, only end-of-sequence remains allowed, so a constrained answer always parses
unless it runs out of ``max_tokens``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence

import llguidance
import llguidance.hf
import numpy as np
import torch

# Whitespace between JSON tokens is bounded: unbounded whitespace would let a weak model spend its
# whole budget on blanks. The separators are Mistral's (", " and ": ", as in its tool calls).
JSON_OPTIONS: dict[str, object] = {
    "whitespace_flexible": False,
    "whitespace_pattern": r"[ ]?",
    "item_separator": ", ",
    "key_separator": ": ",
}

logger = logging.getLogger(__name__)


class ConstraintError(ValueError):
    """A schema llguidance cannot compile (the message says why)."""


def json_grammar(schema: str) -> str:
    """The llguidance grammar of a JSON schema (JSON text).

    Raises:
        ConstraintError: the schema is not valid JSON or uses what llguidance cannot compile.
    """
    try:
        grammar = llguidance.LLMatcher.grammar_from_json_schema(schema, defaults=JSON_OPTIONS)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ConstraintError(str(exc)) from None
    error = llguidance.LLMatcher.validate_grammar(grammar)
    if error:
        raise ConstraintError(error.splitlines()[0][:300])
    return grammar


@functools.lru_cache(maxsize=4)
def _ll_tokenizer(tokenizer) -> llguidance.LLTokenizer:
    # Building the byte-level view of the vocabulary takes about a second: once per tokenizer.
    return llguidance.hf.from_tokenizer(tokenizer)


class JsonConstraint:
    """The grammar state of one sequence.

    Args:
        tokenizer: The engine's (fast) transformers tokenizer.
        schema: The JSON schema, as JSON text.
        vocab_size: Width of the model's logits (may exceed the tokenizer's vocabulary).
    """

    def __init__(self, tokenizer, schema: str, vocab_size: int) -> None:
        ll_tokenizer = _ll_tokenizer(tokenizer)
        self._matcher = llguidance.LLMatcher(ll_tokenizer, json_grammar(schema))
        if self._matcher.is_error():
            raise ConstraintError(self._matcher.get_error())
        self._vocab_size = vocab_size

    def bitmask(self) -> bytes:
        """The allowed-token bitmask (bit ``t % 8`` of byte ``t // 8`` is token ``t``)."""
        return self._matcher.compute_bitmask()

    def allowed(self) -> torch.Tensor:
        """A ``[vocab_size]`` bool tensor of the tokens allowed next."""
        return _unpack([self.bitmask()], self._vocab_size)[0]

    def mask(self, logits_row: torch.Tensor) -> None:
        """Sets the scores of disallowed tokens to -inf, in place."""
        logits_row.masked_fill_(~self.allowed().to(logits_row.device), float("-inf"))

    def accept(self, token: int) -> None:
        """Advances the grammar past a sampled token (always one the mask allowed)."""
        self._matcher.consume_token(token)

    def is_done(self) -> bool:
        """Whether the grammar reached its end (only end-of-sequence was allowed and taken)."""
        return self._matcher.is_stopped()


class Penalties:
    """OpenAI's presence and frequency penalties of one sequence, over its generated tokens:
    ``logit[t] -= presence * (count[t] > 0) + frequency * count[t]``."""

    def __init__(self, presence: float, frequency: float) -> None:
        self.presence, self.frequency = presence, frequency
        self._counts: dict[int, int] = {}

    def accept(self, token: int) -> None:
        """Counts a generated token."""
        self._counts[token] = self._counts.get(token, 0) + 1

    def apply(self, logits_row: torch.Tensor) -> None:
        """Subtracts the penalties in place (only the tokens generated so far are touched)."""
        if not self._counts:
            return
        ids = torch.tensor(list(self._counts), device=logits_row.device)
        counts = torch.tensor(list(self._counts.values()), device=logits_row.device, dtype=logits_row.dtype)
        logits_row[ids] -= self.presence + self.frequency * counts


def apply_masks(logits: torch.Tensor, constraints: Sequence[JsonConstraint | None],
                biases: Sequence[tuple[tuple[int, float], ...]] = (),
                penalties: Sequence[Penalties | None] = ()) -> torch.Tensor:
    """Applies each row's penalties and logit bias, then masks each constrained row of
    ``[batch, vocab]`` logits (unconstrained rows: None). The mask comes last: neither a bias nor a
    penalty can revive a token the grammar bans."""
    biased = [i for i, b in enumerate(biases) if b]
    penalised = [i for i, p in enumerate(penalties) if p is not None]
    if biased or penalised:
        logits = logits.clone()
        for i in penalised:
            penalties[i].apply(logits[i])  # type: ignore[union-attr]
        for i in biased:
            ids = torch.tensor([t for t, _ in biases[i]], device=logits.device)
            logits[i, ids] += torch.tensor([v for _, v in biases[i]], device=logits.device, dtype=logits.dtype)
    rows = [i for i, c in enumerate(constraints) if c is not None]
    if not rows:
        return logits
    allowed = batch_allowed([constraints[i] for i in rows], logits.shape[-1]).to(logits.device)  # type: ignore[misc]
    index = torch.tensor(rows, device=logits.device)
    logits = logits.clone()
    logits[index] = logits[index].masked_fill(~allowed, float("-inf"))
    return logits


def batch_allowed(constraints: Sequence[JsonConstraint], vocab_size: int) -> torch.Tensor:
    """``[rows, vocab_size]`` allowed tokens of several sequences.

    NOTE: computed one matcher after the other. llguidance's parallel executor was 30x slower on a
    busy 2-core machine (its pool sizes itself on the host's CPUs); revisit on GPU hosts.
    """
    return _unpack([c.bitmask() for c in constraints], vocab_size)


def _unpack(bitmask: np.ndarray | list[bytes], vocab_size: int) -> torch.Tensor:
    """``[rows, vocab_size]`` bools from llguidance bitmasks (tokens past the mask: disallowed)."""
    if isinstance(bitmask, list):
        bitmask = np.frombuffer(b"".join(bitmask), dtype=np.uint8).reshape(len(bitmask), -1)
    # numpy's unpackbits costs microseconds for a batch; per-row torch bit ops cost milliseconds.
    bits = np.unpackbits(bitmask, axis=1, bitorder="little").astype(bool)
    if bits.shape[1] < vocab_size:
        bits = np.pad(bits, ((0, 0), (0, vocab_size - bits.shape[1])))
    return torch.from_numpy(bits[:, :vocab_size].copy())


def mask_rows(logits: torch.Tensor, constraints: Sequence[JsonConstraint | None],
              biases: Sequence[tuple[tuple[int, float], ...]],
              penalties: Sequence[Penalties | None]) -> tuple[torch.Tensor, list[int]]:
    """:func:`apply_masks` on a batch; if that fails, row by row, so that a grammar that breaks
    fails only its own sequence. Returns the logits of the rows that succeeded (in order) and the
    indices of the rows that failed."""
    try:
        return apply_masks(logits, constraints, biases, penalties), []
    except Exception:  # noqa: BLE001 - find the row(s) at fault
        rows, failed = [], []
        for i in range(logits.shape[0]):
            try:
                rows.append(apply_masks(logits[i : i + 1], [constraints[i]], [biases[i]], [penalties[i]]))
            except Exception:
                logger.exception("constraint failed on row %d", i)
                failed.append(i)
        return (torch.cat(rows) if rows else logits[:0]), failed
