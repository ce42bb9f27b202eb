"""The engine's public interface: what callers outside ``serve.engine`` may depend on.

The gateway and the moderation layer (:mod:`guardrails`, which imports nothing else from
``serve``) see the engine only through this module: the :class:`EngineClient` Protocol, the request
and output values that cross the boundary, and the exceptions a call can raise. The import rules in
``pyproject.toml`` (import-linter) enforce it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Any, Protocol

from .errors import EngineError, EngineFailure, EngineOverloaded, EngineUnavailable
from .types import EngineOutput, EngineRequest, SamplingParams

__all__ = [
    "EngineClient", "EngineError", "EngineFailure", "EngineOutput", "EngineOverloaded", "EngineRequest",
    "EngineUnavailable", "PromptEncoder", "SamplingParams",
]


class EngineClient(Protocol):
    """Generates sequences; closing a ``generate`` iterator cancels that sequence.

    ``generate`` raises :class:`EngineFailure` subclasses (overloaded, unavailable, error).
    """

    def generate(self, request: EngineRequest) -> AsyncGenerator[EngineOutput, None]:
        """Streams the outputs of one sequence."""
        ...

    async def ready(self) -> bool:
        """Whether the model is loaded and answering."""
        ...


class PromptEncoder(Protocol):
    """Turns conversations into the served model's prompt token ids (``serve.prompts`` implements it).

    The app builder hands one to the gateway and to the moderation layer, so the self-check prompts
    are encoded exactly like the API's: for Mistral models, client text is always text.
    ``encode_chat`` raises ``ValueError`` (``serve.prompts.errors.PromptError``) for a conversation
    the format cannot express.
    """

    format: str
    tool_calls_token_id: int | None

    @property
    def vocab_size(self) -> int:
        """Tokens in the vocabulary, control tokens included."""
        ...

    def encode_chat(self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] | None = None,
                    tool_call_prefix: bool = False) -> list[int]:
        """The prompt of an OpenAI-style conversation, ending where the assistant answers."""
        ...

    def encode_text(self, text: str) -> list[int]:
        """The prompt of a raw text (legacy completions)."""
        ...

    def tokenize(self, text: str) -> list[int]:
        """The tokens of a text alone, no control tokens (for measuring and trimming)."""
        ...

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids``, control tokens left out."""
        ...
