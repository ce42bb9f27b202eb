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

        Rows that fit the buffer share one forward pass (left-padded; padding writes to scratch);
        a chunk that wraps a rolling buffer must come alone.

        Returns:
            ``[rows, vocab]`` logits after each row's last token.
        """
        if len(rows) == 1 and not self.fits_buffer(rows[0]):
            return self._prefill_rolling(rows[0])
        assert all(self.fits_buffer(r) for r in rows), "a wrapping chunk must be prefilled alone"
        width = max(len(r.tokens) for r in rows)
        batch = len(rows)
        ids = torch.zeros((batch, width), dtype=torch.long)
        positions = torch.zeros((batch, width), dtype=torch.long)
        write_slots = torch.full((batch, width), self.cache.scratch, dtype=torch.long)
        last_col = torch.zeros((batch, width), dtype=torch.long)  # the last column each query sees
        for b, row in enumerate(rows):
            pad, span = width - len(row.tokens), torch.arange(row.start, row.start + len(row.tokens))
            ids[b, pad:] = torch.as_tensor(row.tokens, dtype=torch.long)
            positions[b, pad:], last_col[b, pad:] = span, span
            write_slots[b, pad:] = row.slot
        kv_len = max(r.start + len(r.tokens) for r in rows)
        # Padding queries see column 0 only (any finite value), so that no row is all-masked (NaN).
        mask = torch.arange(kv_len)[None, None, :] <= last_col[:, :, None]
        plan = StepPlan(write_slots=write_slots, write_index=positions.clone(), read_rows=_rows([r.slot for r in rows]),
                        kv_len=kv_len, mask=mask[:, None])
        return self._run(ids, positions, plan)

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

    def _run(self, ids, positions, plan: StepPlan, forward=None) -> torch.Tensor:
        device = self.device
        self.cache.plan = StepPlan(
            write_slots=plan.write_slots.to(device), write_index=plan.write_index.to(device),
            read_rows=plan.read_rows if isinstance(plan.read_rows, tuple) else plan.read_rows.to(device),
            kv_len=plan.kv_len, mask=plan.mask.to(device), prepend=plan.prepend,
        )
        try:
            out = (forward or self.model)(
                input_ids=ids.to(device), attention_mask=self.cache.plan.mask, position_ids=positions.to(device),
                cache=self.cache, use_cache=True, logits_to_keep=1,
            )
        finally:
            self.cache.plan = None
        return out.logits[:, -1, :]


def _rows(slots: list[int]) -> tuple[int, int] | torch.Tensor:
    """Consecutive slots are read as a view; others are gathered."""
    if slots == list(range(slots[0], slots[0] + len(slots))):
        return (slots[0], slots[0] + len(slots))
    return torch.as_tensor(slots, dtype=torch.long)


def _kv_dtype(model) -> torch.dtype:
    """The dtype of the attention's keys/values (quantized weights keep float activations)."""
    dtype = getattr(model.config, "dtype", None) or getattr(model.config, "torch_dtype", None)
    if isinstance(dtype, torch.dtype) and dtype.is_floating_point:
        return dtype
    if isinstance(dtype, str) and hasattr(torch, dtype):
        return getattr(torch, dtype)
    return next(p.dtype for p in model.parameters() if p.dtype.is_floating_point)
