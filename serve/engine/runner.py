"""Forward passes of the stock transformers model over the slot KV cache.

:class:`ModelRunner` turns "these sequences, these tokens, at these positions" into one call of
the unmodified ``MistralForCausalLM.forward``: it plans where each token's keys/values go in the
:class:`~serve.engine.kv.SlotKVCache` and builds the 4-D attention mask that gives every row
exactly its own history (causal, and windowed for rolling buffers). The model code is the real
transformers one; only the cache object and the mask are ours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .kv import SlotKVCache, StepPlan


@dataclass(frozen=True)
class PrefillRow:
    """One sequence's prompt chunk: ``tokens`` at positions ``start, start + 1, ...`` of ``slot``."""

    slot: int
    tokens: Sequence[int]
    start: int


class ModelRunner:
    """Runs prefill chunks and decode steps of many sequences on one model.

    Args:
        model: A transformers causal LM in eval mode.
        slots: Sequences held at once.
        max_model_len: Context limit per sequence.
        static_shapes: Decode always over every slot and the whole buffer, with persistent input
            tensors updated in place, so the step has one shape (what CUDA graphs need).
        compile_decode: Wrap the decode forward in ``torch.compile(mode="reduce-overhead")``
            (CUDA only; needs ``static_shapes``).
    """

    def __init__(self, model, *, slots: int, max_model_len: int, static_shapes: bool = False,
                 compile_decode: bool = False) -> None:
        self.model = model
        self.device = next(model.parameters()).device
        self.cache = SlotKVCache(model.config, slots=slots, max_model_len=max_model_len,
                                 dtype=_kv_dtype(model), device=self.device)
        self.static_shapes = static_shapes or compile_decode
        # NOTE: None calls the model itself, so a patched ``model.forward`` (fault injection) applies.
        self._decode_forward = (
            torch.compile(model.forward, mode="reduce-overhead", dynamic=False) if compile_decode else None
        )
        self._static: dict[str, torch.Tensor] = {}

    @property
    def length(self) -> int:
        """Buffer positions per slot (the window for rolling buffers)."""
        return self.cache.length

    def fits_buffer(self, row: PrefillRow) -> bool:
        """Whether the chunk does not wrap the rolling buffer (then it can share a batch)."""
        return row.start + len(row.tokens) <= self.cache.length

    # ---- prefill -------------------------------------------------------------------------------

    def prefill(self, rows: Sequence[PrefillRow]) -> torch.Tensor:
        """Adds prompt chunks to their slots.

        Rows that fit the buffer share one forward pass, packed into a single sequence of their
        tokens (no padding: prompts of 8 and 400 tokens cost 408 tokens of compute) with a
        block-diagonal causal mask; a chunk that wraps a rolling buffer must come alone.

        Returns:
            ``[rows, vocab]`` logits after each row's last token.
        """
        if len(rows) == 1 and not self.fits_buffer(rows[0]):
            return self._prefill_rolling(rows[0])
        assert all(self.fits_buffer(r) for r in rows), "a wrapping chunk must be prefilled alone"
        sizes = [len(r.tokens) for r in rows]
        ids = torch.as_tensor([t for r in rows for t in r.tokens], dtype=torch.long)
        positions = torch.cat([torch.arange(r.start, r.start + len(r.tokens)) for r in rows])
        owner = torch.repeat_interleave(torch.arange(len(rows)), torch.as_tensor(sizes))
        ends = [r.start + len(r.tokens) for r in rows]  # each row reads its slot up to its last token
        column_owner = torch.repeat_interleave(torch.arange(len(rows)), torch.as_tensor(ends))
        column_position = torch.cat([torch.arange(end) for end in ends])
        mask = (owner[:, None] == column_owner[None, :]) & (column_position[None, :] <= positions[:, None])
        slots = torch.as_tensor([r.slot for r in rows], dtype=torch.long)
        plan = StepPlan(write_slots=slots[owner][None], write_index=positions[None], read_rows=(0, 1),
                        kv_len=max(ends), mask=mask[None, None], packed=[(r.slot, e) for r, e in zip(rows, ends)])
        last = torch.cumsum(torch.as_tensor(sizes), 0) - 1
        return self._run(ids[None], positions[None], plan, keep=last)[0]

    def _prefill_rolling(self, row: PrefillRow) -> torch.Tensor:
        """A chunk that wraps the rolling buffer: it attends to the buffer as it was, then to itself."""
        length, window, n = self.cache.length, self.cache.window or self.cache.length, len(row.tokens)
        positions = torch.arange(row.start, row.start + n)
        kept = positions[-length:]
        before = row.start  # tokens written before this chunk
        index = torch.arange(length)
        held = (before - 1) - torch.remainder(before - 1 - index, length)  # absolute position at each index
        old_ok = (index < min(before, length))[None, :] & (held[None, :] > positions[:, None] - window)
        offsets = positions[:, None] - positions[None, :]
        new_ok = (offsets >= 0) & (offsets < window)
        mask = torch.cat([old_ok, new_ok], dim=1)[None, None]
        plan = StepPlan(write_slots=torch.full((1, len(kept)), row.slot, dtype=torch.long),
                        write_index=torch.remainder(kept, length)[None], read_rows=(row.slot, row.slot + 1),
                        kv_len=length, mask=mask, prepend=True)
        return self._run(torch.as_tensor(row.tokens, dtype=torch.long)[None], positions[None], plan)

    # ---- decode --------------------------------------------------------------------------------

    def decode(self, slots: Sequence[int], tokens: Sequence[int], positions: Sequence[int]) -> torch.Tensor:
        """One token for each sequence: ``tokens[i]`` at ``positions[i]`` of ``slots[i]``.

        The step runs over slots ``0..max(slots)`` (all of them with ``static_shapes``): the
        rows read their slots as a view of the cache, never a copy. Idle slots in that range
        compute a throwaway row that writes to scratch.

        Returns:
            ``[len(slots), vocab]`` logits of the next token.
        """
        length = self.cache.length
        rows = self.cache.slots if self.static_shapes else max(slots) + 1
        index = torch.as_tensor(slots, dtype=torch.long)
        pos = torch.as_tensor(positions, dtype=torch.long)
        ids = torch.zeros(rows, dtype=torch.long).index_copy_(0, index, torch.as_tensor(tokens, dtype=torch.long))
        all_pos = torch.zeros(rows, dtype=torch.long).index_copy_(0, index, pos)
        write_slots = torch.full((rows,), self.cache.scratch, dtype=torch.long).index_copy_(0, index, index)
        filled = torch.ones(rows, dtype=torch.long).index_copy_(0, index, torch.clamp(pos + 1, max=length))
        kv_len = length if self.static_shapes else int(filled.max())
        mask = torch.arange(kv_len)[None, :] < filled[:, None]
        inputs = {"ids": ids[:, None], "pos": all_pos[:, None], "slots": write_slots[:, None],
                  "index": torch.remainder(all_pos, length)[:, None], "mask": mask[:, None, None]}
        if self.static_shapes:
            inputs = self._persistent(inputs)
        plan = StepPlan(write_slots=inputs["slots"], write_index=inputs["index"], read_rows=(0, rows),
                        kv_len=kv_len, mask=inputs["mask"])
        logits = self._run(inputs["ids"], inputs["pos"], plan, forward=self._decode_forward)
        if rows == len(slots) and list(slots) == list(range(rows)):
            return logits
        return logits.index_select(0, index.to(logits.device))

    def _persistent(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Copies the step's inputs into tensors that live across steps (stable addresses)."""
        for name, value in inputs.items():
            if name not in self._static:
                self._static[name] = value.to(self.device).clone()
            else:
                self._static[name].copy_(value, non_blocking=True)
        return self._static

    def _run(self, ids, positions, plan: StepPlan, forward=None, keep: torch.Tensor | None = None) -> torch.Tensor:
        """One forward pass; returns the last position's logits per row (``keep``: those positions)."""
        device = self.device
        self.cache.plan = StepPlan(
            write_slots=plan.write_slots.to(device), write_index=plan.write_index.to(device),
            read_rows=plan.read_rows if isinstance(plan.read_rows, tuple) else plan.read_rows.to(device),
            kv_len=plan.kv_len, mask=plan.mask.to(device), prepend=plan.prepend, packed=plan.packed,
        )
        try:
            out = (forward or self.model)(
                input_ids=ids.to(device), attention_mask=self.cache.plan.mask, position_ids=positions.to(device),
                cache=self.cache, use_cache=True, logits_to_keep=1 if keep is None else keep.to(device),
            )
        finally:
            self.cache.plan = None
        return out.logits if keep is not None else out.logits[:, -1, :]


def _kv_dtype(model) -> torch.dtype:
    """The dtype of the attention's keys/values (quantized weights keep float activations)."""
    dtype = getattr(model.config, "dtype", None) or getattr(model.config, "torch_dtype", None)
    if isinstance(dtype, torch.dtype) and dtype.is_floating_point:
        return dtype
    if isinstance(dtype, str) and hasattr(torch, dtype):
        return getattr(torch, dtype)
    return next(p.dtype for p in model.parameters() if p.dtype.is_floating_point)
