"""Picking the next token of every row of a batch.

Sampling is numerically safe for any parameters the API accepts: a temperature below
:data:`GREEDY_TEMPERATURE` is greedy decoding (dividing logits by ``1e-45`` overflows to inf and
softmax then yields NaN), ``top_p`` is clamped into ``[MIN_TOP_P, 1]`` (the most likely token always
stays), and a row whose probabilities are still not a distribution (non-finite logits) falls back
to its argmax instead of making ``torch.multinomial`` raise for the whole batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .types import SamplingParams, TokenLogprob

# Below this temperature, sampling is indistinguishable from greedy decoding in float32 logits
# (differences of 1e-3 between logits become e^100 apart), and dividing by it cannot overflow.
GREEDY_TEMPERATURE = 1e-5
# A nucleus smaller than this keeps only the most likely token anyway.
MIN_TOP_P = 1e-8
_SEED_MODULUS = 2**64  # torch.Generator.manual_seed takes [-2**63, 2**64)

# Below this temperature, sampling is indistinguishable from greedy decoding in float32 logits
# (differences of 1e-3 between logits become e^100 apart), and dividing by it cannot overflow.
GREEDY_TEMPERATURE = 1e-5
# A nucleus smaller than this keeps only the most likely token anyway.
MIN_TOP_P = 1e-8
_SEED_MODULUS = 2**64  # torch.Generator.manual_seed takes [-2**63, 2**64)


def make_generator(seed: int | None, device: torch.device) -> torch.Generator | None:
    """A generator private to one sequence when it has a seed, else None (the global RNG).

    Any integer seed is accepted: it is reduced modulo 2**64 (the API already bounds it to int64;
    ``seed + choice index`` may step past it).
    """
    if seed is None:
        return None
    generator = torch.Generator(device=device)
    generator.manual_seed(seed % _SEED_MODULUS)
    return generator


def is_greedy(params: SamplingParams) -> bool:
    """Whether a sequence is decoded greedily (temperature zero or too small to sample with)."""
    return not params.temperature >= GREEDY_TEMPERATURE  # NaN is greedy too


def _top_p_filter(probs: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    # Drop a token when the mass before it already reaches top_p; the most likely token stays.
    before = sorted_probs.cumsum(dim=-1) - sorted_probs
    sorted_probs = sorted_probs.masked_fill(before >= top_p[:, None], 0.0)
    filtered = torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
    return filtered / filtered.sum(dim=-1, keepdim=True)


def sample_next_tokens(
    logits: torch.Tensor,
    params: Sequence[SamplingParams],
    generators: Sequence[torch.Generator | None],
) -> list[int]:
    """Chooses one token per row.

    Args:
        logits: ``[batch, vocab]`` scores of the last position.
        params: Each row's sampling parameters.
        generators: Each row's random generator (None: the global one).

    Returns:
        The chosen token id of each row. Greedy rows (see :func:`is_greedy`) take the argmax; so
        does a sampled row whose probabilities are not finite.
    """
    chosen = logits.argmax(dim=-1)
    sampled = [i for i, p in enumerate(params) if not is_greedy(p)]
    if sampled:
        index = torch.tensor(sampled, device=logits.device)
        temperature = torch.tensor([params[i].temperature for i in sampled], device=logits.device)
        probs = torch.softmax(logits.index_select(0, index).float() / temperature[:, None], dim=-1)
        top_p = torch.tensor([params[i].top_p for i in sampled], device=logits.device).nan_to_num(1.0)
        top_p = top_p.clamp(MIN_TOP_P, 1.0)
        if bool((top_p < 1).any()):
            probs = _top_p_filter(probs, top_p)
        usable = torch.isfinite(probs).all(dim=-1) & (probs.sum(dim=-1) > 0)
        for row, i in enumerate(sampled):
            if bool(usable[row]):
                chosen[i] = torch.multinomial(probs[row], 1, generator=generators[i])[0]
    return chosen.tolist()


def mask_tokens(logits: torch.Tensor, rows: Sequence[int], token_ids: Sequence[int]) -> None:
    """Makes ``token_ids`` impossible in ``rows`` (in place): ``min_tokens`` holds back the end."""
    if rows and token_ids:
        index = torch.as_tensor(rows, device=logits.device)[:, None]
        logits[index, torch.as_tensor(list(token_ids), device=logits.device)[None, :]] = float("-inf")


def token_logprobs(
    logits: torch.Tensor, tokens: Sequence[int], top: Sequence[int | None]
) -> list[TokenLogprob | None]:
    """Each row's chosen-token log-probability and ``top[row]`` best alternatives (None: not asked).

    One ``log_softmax`` and one ``topk`` over the rows that asked, whatever their number.
    """
    rows = [i for i, k in enumerate(top) if k is not None]
    result: list[TokenLogprob | None] = [None] * len(tokens)
    if not rows:
        return result
    index = torch.as_tensor(rows, device=logits.device)
    logprobs = torch.log_softmax(logits.index_select(0, index).float(), dim=-1)
    chosen_ids = torch.as_tensor([tokens[i] for i in rows], device=logits.device)
    chosen = logprobs.gather(1, chosen_ids[:, None])[:, 0].tolist()
    most = max(top[i] or 0 for i in rows)
    best = logprobs.topk(most, dim=-1) if most else (logprobs[:, :0], logprobs[:, :0].long())
    best_values, best_ids = best[0].tolist(), best[1].tolist()
    for n, i in enumerate(rows):
        k = top[i] or 0
        result[i] = TokenLogprob(tokens[i], chosen[n], tuple(zip(best_ids[n][:k], best_values[n][:k])))
    return result
