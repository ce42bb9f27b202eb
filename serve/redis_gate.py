"""One async Redis connection per process, behind a short circuit breaker.

Every Redis-backed feature degrades instead of failing when Redis is away; the breaker makes that
cheap: after a failure, calls fail immediately for ``retry_after_s`` instead of each waiting for a
connect timeout.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from . import metrics

T = TypeVar("T")


class RedisUnavailable(RuntimeError):
    """Redis could not be reached (or the breaker is open)."""


class RedisGate:
    """Runs Redis operations; failures open the breaker for ``retry_after_s``.

    Args:
        url: ``redis://``, ``rediss://`` or ``unix://`` URL.
        timeout_s: Socket connect and read timeout.
        retry_after_s: How long to fail fast after a failure.
    """

    def __init__(self, url: str, timeout_s: float = 0.5, retry_after_s: float = 1.0) -> None:
        self.client = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )
        self._retry_after_s = retry_after_s
        self._open_until = 0.0

    async def run(self, operation: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
        """Runs ``operation`` with the client.

        Raises:
            RedisUnavailable: Redis failed now or recently.
        """
        if time.monotonic() < self._open_until:
            metrics.record_redis("rejected")
            raise RedisUnavailable("redis recently unreachable")
        try:
            result = await operation(self.client)
        except (RedisError, OSError) as error:
            self._open_until = time.monotonic() + self._retry_after_s
            metrics.record_redis("error")
            raise RedisUnavailable(type(error).__name__) from error
        metrics.record_redis("ok")
        return result

    async def close(self) -> None:
        """Closes the connection pool."""
        await self.client.aclose()
