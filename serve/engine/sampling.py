"""Picking the next token of every row of a batch."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .types import SamplingParams


def make_generator(seed: int | None, device: torch.device) -> torch.Generator | None:
    """A generator private to one sequence when it has a seed, else None (the global RNG)."""
    if seed is None:
        return None
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


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
        The chosen token id of each row. Rows with temperature 0 take the argmax.
    """
    chosen = logits.argmax(dim=-1)
    sampled = [i for i, p in enumerate(params) if p.temperature > 0]
    if sampled:
        index = torch.tensor(sampled, device=logits.device)
        temperature = torch.tensor([params[i].temperature for i in sampled], device=logits.device)
        probs = torch.softmax(logits.index_select(0, index).float() / temperature[:, None], dim=-1)
        top_p = torch.tensor([params[i].top_p for i in sampled], device=logits.device)
        if bool((top_p < 1).any()):
            probs = _top_p_filter(probs, top_p)
        for row, i in enumerate(sampled):
            chosen[i] = torch.multinomial(probs[row], 1, generator=generators[i])[0]
    return chosen.tolist()
