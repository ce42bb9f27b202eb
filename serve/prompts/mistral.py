"""Mistral's chat and tool format through ``mistral-common``.

``mistral-common`` tokenizes each message's text with the SentencePiece (or Tekken) model alone,
so ``[INST]``, ``</s>`` or ``[TOOL_CALLS]`` written by a client are plain text tokens; the control
tokens come only from the format (``[INST]``, ``[AVAILABLE_TOOLS]``, ``[TOOL_CALLS]``,
``[TOOL_RESULTS]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mistral_common.exceptions import MistralCommonException
from mistral_common.protocol.instruct.request import ChatCompletionRequest
from mistral_common.tokens.tokenizers.base import SpecialTokenPolicy
from mistral_common.tokens.tokenizers.mistral import MistralTokenizer
from pydantic import ValidationError

from .errors import PromptError

# File names of mistral-common tokenizers inside a checkpoint directory, newest format first.
TOKENIZER_FILES = ("tekken.json", "tokenizer.model.v7", "tokenizer.model.v3", "tokenizer.model.v2")


def find_tokenizer_file(directory: str | Path) -> Path | None:
    """The mistral-common tokenizer file of a local checkpoint, if it ships one."""
    for name in TOKENIZER_FILES:
        if (Path(directory) / name).is_file():
            return Path(directory) / name
    return None


class MistralPromptEncoder:
    """Encodes conversations in Mistral's format.

    Args:
        tokenizer: A ``mistral-common`` tokenizer (e.g. the v3 one of Mistral-7B-Instruct-v0.3).
    """

    format = "mistral"

    def __init__(self, tokenizer: MistralTokenizer) -> None:
        self._tokenizer = tokenizer
        self._raw = tokenizer.instruct_tokenizer.tokenizer
        self.tool_calls_token_id: int | None = self._control_id("[TOOL_CALLS]")

    @classmethod
    def from_file(cls, path: str | Path) -> MistralPromptEncoder:
        """Loads the tokenizer file (``tokenizer.model.v3``, ``tekken.json`` ...)."""
        return cls(MistralTokenizer.from_file(str(path)))

    @property
    def vocab_size(self) -> int:
        """Tokens in the vocabulary, control tokens included."""
        return self._raw.n_words

    def encode_chat(self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] | None = None,
                    tool_call_prefix: bool = False) -> list[int]:
        """The prompt of an OpenAI-style conversation, ending where the assistant answers.

        Args:
            messages: ``{"role", "content", "tool_calls", "tool_call_id"}`` dicts, as OpenAI's.
            tools: OpenAI function tools offered to the model.
            tool_call_prefix: End the prompt with ``[TOOL_CALLS]`` (the answer must be tool calls).

        Raises:
            PromptError: roles, order or tool call ids the format cannot express.
        """
        try:
            request = ChatCompletionRequest.from_openai(list(messages), tools=list(tools) if tools else None)
            tokens = list(self._tokenizer.encode_chat_completion(request).tokens)
        except (MistralCommonException, ValidationError, ValueError, TypeError, KeyError) as exc:
            raise PromptError(_first_line(exc)) from None
        if tool_call_prefix and self.tool_calls_token_id is not None:
            tokens.append(self.tool_calls_token_id)
        return tokens

    def encode_text(self, text: str) -> list[int]:
        """``<s>`` then the text as text (legacy completions' raw prompts)."""
        return list(self._raw.encode(text, bos=True, eos=False))

    def tokenize(self, text: str) -> list[int]:
        """The tokens of ``text`` alone."""
        return list(self._raw.encode(text, bos=False, eos=False))

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids``, control tokens left out."""
        return self._raw.decode(list(ids), special_token_policy=SpecialTokenPolicy.IGNORE)

    def _control_id(self, piece: str) -> int | None:
        try:
            return int(self._raw.get_special_token(piece))
        except Exception:  # noqa: BLE001 - tokenizers without tool support
            return None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
