"""Batch-dimension surgery on a transformers ``DynamicCache`` for continuous batching.

Sequences of a running batch are left-padded to a common length: row ``i`` of the cache holds
its tokens at the right end and zeros (masked out) at the left. Joining, leaving and trimming
only touch the batch and length dimensions, so the model code stays the stock transformers one.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache


def _layers(cache: DynamicCache) -> list[Any]:
    """The cache's layers: full-attention layers whose ``keys``/``values`` are set tensors.

    NOTE: transformers types a layer as any of its cache-layer kinds (some have no keys, all may
    be unset before the first forward pass); a Mistral cache after prefill has only these.
    """
    return list(cache.layers)


def _pad_left(tensor: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    if size == 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = size
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


def zero_padding(cache: DynamicCache, mask: torch.Tensor) -> None:
    """Zeros the cached keys/values of padding positions.

    NOTE: padding positions attend to nothing during prefill, so their states can be NaN; a NaN
    key times a zero attention weight is still NaN, so they must be cleared before any decode.
    """
    keep = mask[:, None, :, None].to(_layers(cache)[0].keys.dtype)
    for layer in _layers(cache):
        layer.keys = torch.nan_to_num(layer.keys) * keep
        layer.values = torch.nan_to_num(layer.values) * keep


def concat(
    running: DynamicCache | None,
    running_mask: torch.Tensor | None,
    joining: DynamicCache,
    joining_mask: torch.Tensor,
) -> tuple[DynamicCache, torch.Tensor]:
    """Appends the rows of ``joining`` to ``running``, left-padding the shorter one."""
    if running is None or running_mask is None or running_mask.shape[0] == 0:
        return joining, joining_mask
    length = max(running_mask.shape[1], joining_mask.shape[1])
    pad_running = length - running_mask.shape[1]
    pad_joining = length - joining_mask.shape[1]
    for old, new in zip(_layers(running), _layers(joining)):
        old.keys = torch.cat([_pad_left(old.keys, 2, pad_running), _pad_left(new.keys, 2, pad_joining)])
        old.values = torch.cat(
            [_pad_left(old.values, 2, pad_running), _pad_left(new.values, 2, pad_joining)]
        )
    mask = torch.cat([_pad_left(running_mask, 1, pad_running), _pad_left(joining_mask, 1, pad_joining)])
    return running, mask


def select_rows(cache: DynamicCache, mask: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Keeps only ``rows`` of the batch, then drops left columns that no row uses.

    Returns:
        The new attention mask (the cache is changed in place).
    """
    mask = mask.index_select(0, rows)
    used = mask.any(dim=0).nonzero()
    start = int(used[0]) if used.numel() else mask.shape[1]
    mask = mask[:, start:]
    for layer in _layers(cache):
        layer.keys = layer.keys.index_select(0, rows)[:, :, start:]
        layer.values = layer.values.index_select(0, rows)[:, :, start:]
    return mask
