"""Readiness answered from a short cache, so that probes cannot make the engine work.

``/readyz`` is unauthenticated (load balancers and kubelets call it), and a real readiness check
generates a token on the engine. Without a cache, anyone could turn probes into engine work; with
it, the engine sees at most one check per ``ttl_s`` per gateway replica, and concurrent probes
share the one check in flight.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)


class ReadinessCache:
    """Caches the result of an async readiness check for ``ttl_s`` seconds.

    Args:
        check: The real check (True: ready). An exception counts as not ready.
        ttl_s: How long a result is reused (0: every call checks, but concurrent calls still share).
        clock: Monotonic clock (tests pass a fake one).
    """

    def __init__(self, check: Callable[[], Awaitable[bool]], ttl_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._check = check
        self._ttl_s = ttl_s
        self._clock = clock
        self._result: bool | None = None
        self._checked_at = 0.0
        self._inflight: asyncio.Future[bool] | None = None

    async def ready(self) -> bool:
        """The cached result, or the result of the (one, shared) check in flight."""
        if self._result is not None and self._clock() - self._checked_at < self._ttl_s:
            return self._result
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._run())
        # NOTE: shielded: a probe that disconnects must not cancel the check others wait on.
        return await asyncio.shield(self._inflight)

    async def _run(self) -> bool:
        try:
            result = bool(await self._check())
        except Exception:
            logger.warning("readiness check failed", exc_info=True)
            result = False
        self._result, self._checked_at, self._inflight = result, self._clock(), None
        return result
