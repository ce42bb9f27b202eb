"""How callers (the gateway, the moderation rails) reach the engine: the Ray Serve handle
implementation of :class:`serve.engine.api.EngineClient`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator

from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError, ReplicaUnavailableError

from .api import EngineClient  # noqa: F401 - the interface this implements
from .errors import EngineError, EngineFailure, EngineOverloaded, EngineUnavailable
from .types import EngineOutput, EngineRequest

logger = logging.getLogger(__name__)

# Retries of a request whose replica was lost before it produced output. One: a request that
# itself crashes replicas can take down at most two.
_RETRIES_ON_REPLICA_LOSS = 1
DEFAULT_FIRST_OUTPUT_TIMEOUT_S = 120.0


class RayEngineClient:
    """Calls the Engine deployment through a Ray Serve deployment handle.

    Ray's exceptions are turned into :mod:`serve.engine.errors` here so that nothing above this
    layer knows about Ray (and this layer knows nothing of HTTP).

    Args:
        handle: The Engine deployment's handle.
        first_output_timeout_s: A request without output after this long (queued behind a full
            deployment, or with no replica left to take it) fails (:class:`EngineUnavailable`) instead of waiting
            forever; far above a healthy deployment's queueing plus prefill time.
    """

    def __init__(self, handle, first_output_timeout_s: float = DEFAULT_FIRST_OUTPUT_TIMEOUT_S) -> None:
        self._handle = handle
        self._stream = handle.options(stream=True)
        self._first_output_timeout_s = first_output_timeout_s

    async def generate(self, request: EngineRequest) -> AsyncGenerator[EngineOutput, None]:
        """Streams one sequence from some engine replica.

        Raises:
            EngineOverloaded: every replica full and the queue bound reached (with the deployment's
                status hint and retry-after), at once.
            EngineUnavailable: a replica lost after it produced output, or twice before (a replica
                lost before any output, crashed, its node died, its health check failed, is retried
                once on another replica), or no output in time.
            EngineError: any other failure.
        """
        for attempt in range(1 + _RETRIES_ON_REPLICA_LOSS):
            responses = self._stream.generate.remote(request)
            produced = False
            try:
                outputs = aiter(responses)
                try:
                    first = await asyncio.wait_for(anext(outputs), self._first_output_timeout_s)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    logger.warning("no engine output for %s after %.0fs", request.request_id,
                                   self._first_output_timeout_s)
                    raise EngineUnavailable("no engine output in time") from None
                produced = True
                yield first
                async for output in outputs:
                    yield output
                return
            except BackPressureError as error:
                raise EngineOverloaded(error.retry_after_s, error.status_code) from None
            except DeploymentUnavailableError:
                raise EngineUnavailable("the engine deployment is unavailable") from None
            except (RayActorError, ReplicaUnavailableError):
                if not produced and attempt < _RETRIES_ON_REPLICA_LOSS:
                    logger.warning("engine replica lost before any output of %s; retrying", request.request_id)
                    continue
                logger.warning("engine replica lost while serving %s", request.request_id)
                raise EngineUnavailable("the engine replica was lost") from None
            except EngineFailure:
                raise
            except Exception:
                logger.exception("engine call failed for %s", request.request_id)
                raise EngineError("engine call failed") from None
            finally:
                # Stops the replica's generation when our caller went away (client disconnect).
                # NOTE: cancel() re-raises a failed assignment's error (BackPressureError, ...),
                # which would replace the engine error raised above.
                with contextlib.suppress(Exception):
                    responses.cancel()

    async def ready(self) -> bool:
        """Asks one engine replica to generate a token."""
        try:
            return bool(await self._handle.ready.remote())
        except Exception:  # not ready is the answer to any failure here
            logger.warning("engine readiness probe failed", exc_info=True)
            return False
