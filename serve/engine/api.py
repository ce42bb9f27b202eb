"""The engine's public interface: what callers outside ``serve.engine`` may depend on.

The gateway and the moderation layer (:mod:`guardrails`, which imports nothing else from
``serve``) see the engine only through this module: the :class:`EngineClient` Protocol, the request
and output values that cross the boundary, and the exceptions a call can raise. The import rules in
``pyproject.toml`` (import-linter) enforce it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from .errors import EngineError, EngineFailure, EngineOverloaded, EngineUnavailable
from .types import EngineOutput, EngineRequest, SamplingParams

__all__ = [
    "EngineClient", "EngineError", "EngineFailure", "EngineOutput", "EngineOverloaded", "EngineRequest",
    "EngineUnavailable", "SamplingParams",
]


class EngineClient(Protocol):
    """Generates sequences; closing a ``generate`` iterator cancels that sequence.

    ``generate`` raises :class:`EngineFailure` subclasses (overloaded, unavailable, error).
    """

    def generate(self, request: EngineRequest) -> AsyncIterator[EngineOutput]:
        """Streams the outputs of one sequence."""
        ...

    async def ready(self) -> bool:
        """Whether the model is loaded and answering."""
        ...
