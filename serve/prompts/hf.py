"""Hugging Face chat templates, for models that are not Mistral's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jinja2 import TemplateError

from .errors import PromptError


class HFPromptEncoder:
    """Encodes conversations with the model's own chat template.

    NOTE: a chat template renders text; the tokenizer then matches control tokens in that text,
    so this path cannot keep client text from forming control tokens. Mistral models use
    :class:`serve.prompts.mistral.MistralPromptEncoder` instead.

    Args:
        tokenizer: A transformers tokenizer carrying a chat template.
    """

    format = "hf"
    tool_calls_token_id: int | None = None

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer

    @property
    def vocab_size(self) -> int:
        """Tokens in the vocabulary, added tokens included."""
        return len(self._tokenizer)

    def encode_chat(self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] | None = None,
                    tool_call_prefix: bool = False) -> list[int]:
        """The prompt of an OpenAI-style conversation, ending where the assistant answers.

        Raises:
            PromptError: the template refuses the conversation (its own ``raise_exception``).
        """
        rendered = [{**m, "role": "system" if m.get("role") == "developer" else m.get("role")} for m in messages]
        try:
            encoded = self._tokenizer.apply_chat_template(
                rendered, tools=list(tools) if tools else None, tokenize=True, add_generation_prompt=True,
                return_dict=True,
            )
        except TemplateError as exc:
            raise PromptError(str(exc)) from None
        return list(encoded["input_ids"])

    def encode_text(self, text: str) -> list[int]:
        """The tokenizer's encoding of a raw prompt (with its special tokens, e.g. BOS)."""
        return list(self._tokenizer(text, add_special_tokens=True)["input_ids"])

    def tokenize(self, text: str) -> list[int]:
        """The tokens of ``text`` alone."""
        return list(self._tokenizer.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids``, special tokens left out."""
        return self._tokenizer.decode(list(ids), skip_special_tokens=True)
