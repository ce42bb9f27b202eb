"""Pre-allocated KV memory for continuous batching: one slot per sequence.

Every layer owns two tensors ``[slots + 1, kv_heads, length, head_dim]`` allocated once. A
sequence is given a free slot when it joins and gives it back when it leaves: nothing is copied
or re-laid out, so joins and leaves cost nothing. Each sequence writes its keys/values at its
own positions, so sequences of different lengths share a decode step without padding to the
longest one (each row's attention mask covers exactly its own filled positions). The extra last
slot is scratch: padding tokens of a batched prefill and idle rows of a decode step write there.

For a model with ``sliding_window`` W shorter than the context, ``length`` is W and the slot is a
rolling buffer (Mistral's rolling-buffer cache): position ``p`` lives at index ``p % W``. Keys
carry their rotary position already, and attention is invariant to the order of keys, so only
the mask needs to know which absolute position each index holds. Memory per sequence is then
flat however long it grows.

The stock transformers model drives this class like any cache: it calls :meth:`SlotKVCache.update`
once per layer, and gets the 4-D attention mask that :class:`StepPlan` built.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class StepPlan:
    """Where one forward pass writes and reads.

    Attributes:
        write_slots: ``[batch, q]`` slot of each new token (scratch for padding).
        write_index: ``[batch, q]`` buffer index of each new token.
        read_rows: ``(start, stop)`` when the rows read consecutive slots (a view, no copy), else
            a ``[batch]`` tensor of slots (gathered).
        kv_len: Buffer indices read by the attention (a prefix of the buffer).
        mask: ``[batch, 1, q, kv columns]`` boolean attention mask (True: attend).
        prepend: Rolling-buffer prefill of one row: attend to the buffer as it was before this
            chunk, then the chunk itself; only the chunk's last ``length`` tokens are stored.
        packed: Packed prefill: one batch row holds several sequences' chunks; the attention
            reads ``(slot, end)`` of each in turn, concatenated (the mask keeps them apart).
    """

    write_slots: torch.Tensor
    write_index: torch.Tensor
    read_rows: tuple[int, int] | torch.Tensor
    kv_len: int
    mask: torch.Tensor
    prepend: bool = False
    packed: list[tuple[int, int]] | None = None


class SlotKVCache:
    """A fixed pool of per-sequence KV slots that the stock model code reads and writes.

    Args:
        config: The model's transformers config (layers, heads, sliding window).
        slots: Sequences held at once (the engine's batch size).
        max_model_len: Context limit per sequence.
        dtype: Keys/values dtype (the model's).
        device: Where the memory lives.
    """

    def __init__(self, config, *, slots: int, max_model_len: int, dtype: torch.dtype, device: torch.device) -> None:
        heads = config.num_key_value_heads or config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        window = getattr(config, "sliding_window", None)
        self.window: int | None = int(window) if window else None
        self.length = min(max_model_len, self.window) if self.window else max_model_len
        self.slots = slots
        self.scratch = slots
        self.device = device
        shape = (slots + 1, heads, self.length, head_dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(config.num_hidden_layers)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(config.num_hidden_layers)]
        self.bytes_per_token = 2 * config.num_hidden_layers * heads * head_dim * self.keys[0].element_size()
        self.plan: StepPlan | None = None

    # ---- what the model calls ----------------------------------------------------------------

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs):
        """Stores the new keys/values of a layer and returns what its attention reads."""
        plan = self.plan
        assert plan is not None, "SlotKVCache used outside a planned step"
        keys, values = self.keys[layer_idx], self.values[layer_idx]
        if plan.prepend:
            old_keys, old_values = self._read(keys, values, plan)
            read = (torch.cat([old_keys, key_states], dim=2), torch.cat([old_values, value_states], dim=2))
            kept = plan.write_index.shape[1]
            self._write(keys, values, key_states[:, :, -kept:], value_states[:, :, -kept:], plan)
            return read
        self._write(keys, values, key_states, value_states, plan)
        return self._read(keys, values, plan)

    def get_seq_length(self, layer_idx: int = 0) -> int:
        """Unused by the engine (it always passes positions); present for the Cache protocol."""
        return 0

    @staticmethod
    def _write(keys, values, new_keys, new_values, plan: StepPlan) -> None:
        # keys[slot[b, q], :, index[b, q]] = new[b, :, q]  (advanced indices first: [b, q, heads, dim])
        keys[plan.write_slots, :, plan.write_index] = new_keys.transpose(1, 2)
        values[plan.write_slots, :, plan.write_index] = new_values.transpose(1, 2)

    @staticmethod
    def _read(keys, values, plan: StepPlan):
        if plan.packed is not None:
            return (torch.cat([keys[slot : slot + 1, :, :end] for slot, end in plan.packed], dim=2),
                    torch.cat([values[slot : slot + 1, :, :end] for slot, end in plan.packed], dim=2))
        if isinstance(plan.read_rows, tuple):
            start, stop = plan.read_rows
            return keys[start:stop, :, : plan.kv_len], values[start:stop, :, : plan.kv_len]
        return (keys[:, :, : plan.kv_len].index_select(0, plan.read_rows),
                values[:, :, : plan.kv_len].index_select(0, plan.read_rows))

    # ---- bookkeeping ---------------------------------------------------------------------------

    def capacity_bytes(self) -> int:
        """Bytes allocated for sequences (scratch excluded)."""
        return self.slots * self.length * self.bytes_per_token

    def used_bytes(self, filled: list[int]) -> int:
        """Bytes holding live tokens, given each live sequence's number of cached tokens."""
        return sum(min(n, self.length) for n in filled) * self.bytes_per_token

    def copy_in(self, slot: int, start: int, blocks: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Writes stored ``(keys, values)`` blocks ``[layers, heads, n, dim]`` at ``start`` of a slot."""
        at = start
        for block_keys, block_values in blocks:
            n = block_keys.shape[2]
            for layer, (keys, values) in enumerate(zip(self.keys, self.values)):
                keys[slot, :, at : at + n] = block_keys[layer]
                values[slot, :, at : at + n] = block_values[layer]
            at += n

    def copy_out(self, slot: int, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A copy of positions ``[start, stop)`` of a slot (never wrapped): ``[layers, heads, n, dim]``."""
        return (torch.stack([k[slot, :, start:stop] for k in self.keys]),
                torch.stack([v[slot, :, start:stop] for v in self.values]))
