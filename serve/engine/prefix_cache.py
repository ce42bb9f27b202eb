"""Reusing the keys/values of prompt prefixes that many requests share.

Every request of a team starts with the same policy system prompt, so its keys/values are the
same too (they depend only on the tokens before them). Prompts are cut into blocks of
``block_size`` tokens; a block is stored under the hash of the whole prefix it ends, so a hit on
block ``k`` means blocks ``0..k`` all match. A joining sequence copies its longest stored prefix
into its slot and prefills only the rest. Blocks are evicted least recently used past a byte
budget.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass
class _Block:
    tokens: tuple[int, ...]
    parent: int | None
    keys: torch.Tensor  # [layers, kv_heads, block_size, head_dim]
    values: torch.Tensor


class PrefixCache:
    """Stored KV blocks of prompt prefixes, keyed by the prefix they end.

    Args:
        block_size: Tokens per block (prefixes are reused in whole blocks).
        capacity_bytes: Most bytes of stored keys/values; least recently used blocks go first.
    """

    def __init__(self, block_size: int, capacity_bytes: int) -> None:
        self.block_size = block_size
        self.capacity_bytes = capacity_bytes
        self.used_bytes = 0
        self.hit_tokens = 0
        self._blocks: collections.OrderedDict[int, _Block] = collections.OrderedDict()

    def _keys(self, tokens: Sequence[int], blocks: int) -> list[tuple[int, tuple[int, ...], int | None]]:
        out: list[tuple[int, tuple[int, ...], int | None]] = []
        parent: int | None = None
        for k in range(blocks):
            chunk = tuple(tokens[k * self.block_size : (k + 1) * self.block_size])
            key = hash((parent, chunk))
            out.append((key, chunk, parent))
            parent = key
        return out

    def lookup(self, tokens: Sequence[int], limit: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The stored blocks of the longest cached prefix of ``tokens`` no longer than ``limit``."""
        found = []
        for key, chunk, parent in self._keys(tokens, limit // self.block_size):
            block = self._blocks.get(key)
            if block is None or block.tokens != chunk or block.parent != parent:
                break
            self._blocks.move_to_end(key)
            found.append((block.keys, block.values))
        self.hit_tokens += len(found) * self.block_size
        return found

    def missing(self, tokens: Sequence[int], limit: int) -> list[tuple[int, int]]:
        """``(start, stop)`` token ranges of the blocks of ``tokens[:limit]`` not yet stored."""
        return [(k * self.block_size, (k + 1) * self.block_size)
                for k, (key, _, _) in enumerate(self._keys(tokens, limit // self.block_size))
                if key not in self._blocks]

    def store(self, tokens: Sequence[int], start: int, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Stores the block of ``tokens`` that begins at ``start`` (its prefix blocks come first)."""
        index = start // self.block_size
        key, chunk, parent = self._keys(tokens, index + 1)[index]
        size = keys.numel() * keys.element_size() * 2
        if key in self._blocks or size > self.capacity_bytes:
            return
        while self.used_bytes + size > self.capacity_bytes and self._blocks:
            _, evicted = self._blocks.popitem(last=False)
            self.used_bytes -= evicted.keys.numel() * evicted.keys.element_size() * 2
        self._blocks[key] = _Block(chunk, parent, keys, values)
        self.used_bytes += size

    def __len__(self) -> int:
        return len(self._blocks)
