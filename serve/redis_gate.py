"""One async Redis connection pool per process, behind a circuit breaker for outages only.

Every Redis-backed feature degrades instead of failing when Redis is away; the breaker makes that
cheap: after a connection failure (refused, reset, unresolvable), calls fail immediately for
``retry_after_s`` instead of each waiting for a connect timeout.

A slow Redis is not an outage. A call that times out fails alone (:class:`RedisSlow`); it never
opens the breaker, because on a saturated machine a burst of requests can push a healthy Redis's
answers past any socket timeout, and treating that as an outage would skip quota checks and lose
accounting for everyone. Command errors (``OOM`` under ``noeviction``, a wrong type) are
:class:`RedisRefused`: Redis answered, so the breaker stays closed too.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from . import metrics

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 2.0


class RedisUnavailable(RuntimeError):
    """Redis could not serve this call (unreachable, breaker open, too slow, or refused)."""


class RedisSlow(RedisUnavailable):
    """The call timed out; Redis is presumably up but busy (the breaker stays closed)."""


class RedisRefused(RedisUnavailable):
    """Redis answered with an error (e.g. OOM when full); the breaker stays closed."""


class RedisGate:
    """Runs Redis operations; connection failures open the breaker for ``retry_after_s``.

    Args:
        url: ``redis://``, ``rediss://`` or ``unix://`` URL.
        timeout_s: Socket connect and read timeout. Generous on purpose (see the module doc):
            only a connection failure is taken for an outage.
        retry_after_s: How long to fail fast after a connection failure.
        silent_outage_s: Timeouts open the breaker only once no call at all has succeeded for this
            long (a black-holed network, not a busy server, which still answers some calls).
    """

    def __init__(self, url: str, timeout_s: float = DEFAULT_TIMEOUT_S, retry_after_s: float = 1.0,
                 silent_outage_s: float = 10.0) -> None:
        self.client = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )
        self._retry_after_s = retry_after_s
        self._silent_outage_s = silent_outage_s
        self._open_until = 0.0
        self._last_ok = time.monotonic()

    @property
    def is_open(self) -> bool:
        """Whether the breaker is open (calls fail without touching the network)."""
        return time.monotonic() < self._open_until

    async def run(self, operation: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
        """Runs ``operation`` with the client.

        Raises:
            RedisUnavailable: Redis failed now or recently (breaker open). Its subclasses
                :class:`RedisSlow` and :class:`RedisRefused` mark a timeout or a command error,
                which fail only this call.
        """
        if self.is_open:
            metrics.record_redis("rejected")
            raise RedisUnavailable("redis recently unreachable")
        try:
            result = await operation(self.client)
        except (RedisTimeoutError, TimeoutError) as error:
            metrics.record_redis("timeout")
            if time.monotonic() - self._last_ok > self._silent_outage_s:
                self._open_until = time.monotonic() + self._retry_after_s
            raise RedisSlow(type(error).__name__) from error
        except ResponseError as error:
            metrics.record_redis("refused")
            raise RedisRefused(str(error).split(" ", 1)[0]) from error
        except (RedisConnectionError, RedisError, OSError) as error:
            # NOTE: redis-py reports a connect timeout as TimeoutError (above) and a refused or reset
            # connection as ConnectionError: only the latter is an outage.
            self._open_until = time.monotonic() + self._retry_after_s
            metrics.record_redis("error")
            raise RedisUnavailable(type(error).__name__) from error
        self._last_ok = time.monotonic()
        metrics.record_redis("ok")
        return result

    async def close(self) -> None:
        """Closes the connection pool."""
        await self.client.aclose()
