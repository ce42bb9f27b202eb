"""How the gateway reaches the engine: a small Protocol and its Ray Serve handle implementation."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Protocol

from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

from ..engine.types import EngineOutput, EngineRequest
from ..errors import ServiceUnavailableError, internal_error

logger = logging.getLogger(__name__)


class EngineClient(Protocol):
    """Generates sequences; closing a ``generate`` iterator cancels that sequence."""

    def generate(self, request: EngineRequest) -> AsyncIterator[EngineOutput]:
        """Streams the outputs of one sequence."""
        ...

    async def ready(self) -> bool:
        """Whether the model is loaded and answering."""
        ...


class RayEngineClient:
    """Calls the Engine deployment through a Ray Serve deployment handle.

    Ray's exceptions are turned into typed API errors here so that nothing above this layer
    knows about Ray.
    """

    def __init__(self, handle) -> None:
        self._handle = handle
        self._stream = handle.options(stream=True)

    async def generate(self, request: EngineRequest) -> AsyncIterator[EngineOutput]:
        """Streams one sequence from some engine replica."""
        responses = self._stream.generate.remote(request)
        try:
            async for output in responses:
                yield output
        except (BackPressureError, DeploymentUnavailableError):
            raise ServiceUnavailableError(
                message="The engine is at capacity. Please retry shortly.", code="engine_overloaded"
            ) from None
        except Exception:
            logger.exception("engine call failed for %s", request.request_id)
            raise internal_error() from None
        finally:
            # Stops the replica's generation when our caller went away (client disconnect).
            responses.cancel()

    async def ready(self) -> bool:
        """Asks one engine replica to generate a token."""
        try:
            return bool(await self._handle.ready.remote())
        except Exception:  # noqa: BLE001 - not ready is the answer to any failure here
            logger.warning("engine readiness probe failed", exc_info=True)
            return False
