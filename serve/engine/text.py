"""Turning a growing list of token ids into text deltas, and cutting text at stop strings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

# Leading context tokens decoded with each step so that tokenizers which render a word's leading
# space from context (SentencePiece/Metaspace) produce the same text as decoding all at once.
_CONTEXT_TOKENS = 5


class Decoder(Protocol):
    """The part of a tokenizer that the detokenizer needs."""

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = ...) -> str: ...

    def convert_ids_to_tokens(self, ids: int) -> str: ...


class IncrementalDetokenizer:
    """Emits the text each new token adds, never splitting a multi-byte character.

    It decodes a short window of recent tokens instead of the whole sequence, so each step costs
    the same however long the output grows. Special tokens are skipped, except those in ``show``,
    which are written as their own text (e.g. ``[TOOL_CALLS]``, which marks a tool call).
    SentencePiece byte-fallback tokens (``<0xE2>`` ...) wait until their character is complete.
    """

    def __init__(self, decoder: Decoder, prompt_token_ids: Sequence[int], show: Sequence[int] = ()) -> None:
        self._decoder = decoder
        context = list(prompt_token_ids[-_CONTEXT_TOKENS:])
        special = set(getattr(decoder, "all_special_ids", ()))
        # Context starts after the prompt's last control token: an answer after "[/INST]" begins
        # like a text of its own (SentencePiece drops its first word's space), as decoding the
        # answer alone does; a raw prompt's continuation keeps its leading space.
        cut = max((i + 1 for i, token in enumerate(context) if token in special), default=0)
        self._ids: list[int] = context[cut:]
        self._prefix_offset = 0
        self._read_offset = len(self._ids)
        self._show = frozenset(show)

    def push(self, token_id: int) -> str:
        """Adds one generated token and returns the text that is now complete."""
        if token_id in self._show:
            # Not added to the window: the text around it decodes as if it were not there.
            return str(self._decoder.convert_ids_to_tokens(token_id))
        self._ids.append(token_id)
        prefix = self._decoder.decode(self._ids[self._prefix_offset : self._read_offset], skip_special_tokens=True)
        full = self._decoder.decode(self._ids[self._prefix_offset :], skip_special_tokens=True)
        # A trailing U+FFFD means the last token ended inside a UTF-8 character: wait for more.
        if len(full) <= len(prefix) or full.endswith("\ufffd"):
            return ""
        self._prefix_offset = self._read_offset
        self._read_offset = len(self._ids)
        return full[len(prefix) :]


class StopStringFilter:
    """Holds back text that may be the start of a stop string; cuts the text at a stop string."""

    def __init__(self, stop: Sequence[str]) -> None:
        self._stop = tuple(stop)
        self._pending = ""

    def feed(self, text: str, allow_stop: bool = True) -> tuple[str, bool]:
        """Adds generated text.

        Args:
            text: The new text.
            allow_stop: False while stop strings may not end the sequence yet (``min_tokens``):
                text is emitted as is, except a tail that may begin a stop string.

        Returns:
            The text that is safe to emit now, and whether a stop string was reached (the
            returned text then ends right before it).
        """
        if not self._stop:
            return text, False
        pending = self._pending + text
        hits = [i for i in (pending.find(s) for s in self._stop) if i >= 0] if allow_stop else []
        if hits:
            self._pending = ""
            return pending[: min(hits)], True
        keep = self._longest_stop_prefix_suffix(pending)
        self._pending = pending[len(pending) - keep :] if keep else ""
        return pending[: len(pending) - keep], False

    def flush(self) -> str:
        """Returns held-back text once the sequence ended for another reason."""
        pending, self._pending = self._pending, ""
        return pending

    def _longest_stop_prefix_suffix(self, text: str) -> int:
        longest = 0
        for stop in self._stop:
            for size in range(min(len(stop) - 1, len(text)), longest, -1):
                if text.endswith(stop[:size]):
                    longest = size
                    break
        return longest
