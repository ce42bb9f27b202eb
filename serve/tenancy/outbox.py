"""Accounting writes that must reach Redis: usage is billing data and is never silently lost.

A write is tried at once. When Redis does not take it (down, slow, full), it is kept in the
replica and retried in the background, oldest first, with capped exponential backoff, until Redis
takes it. Every write is idempotent (its Lua script marks a unique id with ``SET NX`` in the same
step), so a write that timed out after Redis applied it is not counted twice when retried. Only a
full buffer (``max_pending``, far beyond any outage a replica should ride out) drops a write, and
that is counted (``mistral_serve_accounting_writes_total{outcome="dropped"}``) and logged.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from .. import metrics
from ..redis_gate import RedisGate, RedisUnavailable

logger = logging.getLogger(__name__)

Write = Callable[[Any], Awaitable[Any]]


class AccountingOutbox:
    """Tries each write now; keeps and retries the ones Redis did not take.

    Args:
        gate: Redis access.
        max_pending: Writes kept at most; beyond it a write is dropped (counted, logged).
        first_backoff_s: Wait before the first retry; doubles per failed retry.
        max_backoff_s: Longest wait between retries.
    """

    def __init__(self, gate: RedisGate, max_pending: int = 100_000, first_backoff_s: float = 0.1,
                 max_backoff_s: float = 5.0) -> None:
        self._gate = gate
        self._max_pending = max_pending
        self._first_backoff_s = first_backoff_s
        self._max_backoff_s = max_backoff_s
        self._pending: collections.deque[tuple[str, Write]] = collections.deque()
        self._flusher: asyncio.Task | None = None
        self._empty = asyncio.Event()
        self._empty.set()

    @property
    def pending(self) -> int:
        """Writes waiting for Redis."""
        return len(self._pending)

    async def submit(self, kind: str, write: Write) -> bool:
        """Runs ``write`` through the gate, or buffers it for retrying.

        Args:
            kind: What it is, for metrics and logs (``usage``, ``refund``).
            write: An idempotent operation taking the Redis client.

        Returns:
            True when Redis took it now; False when it was buffered (or dropped).
        """
        if not self._pending:  # NOTE: keep order: nothing jumps ahead of buffered writes
            try:
                await self._gate.run(write)
                metrics.record_accounting(kind, "written", 0)
                return True
            except RedisUnavailable:
                pass
        if len(self._pending) >= self._max_pending:
            logger.error("accounting write dropped (%s): retry buffer full (%d)", kind, self._max_pending)
            metrics.record_accounting(kind, "dropped", len(self._pending))
            return False
        self._pending.append((kind, write))
        self._empty.clear()
        metrics.record_accounting(kind, "buffered", len(self._pending))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush_loop())
        return False

    async def drained(self, timeout_s: float | None = None) -> bool:
        """Waits until every buffered write reached Redis; False if ``timeout_s`` passed first."""
        try:
            await asyncio.wait_for(self._empty.wait(), timeout_s)
            return True
        except TimeoutError:
            return False

    async def _flush_loop(self) -> None:
        backoff = self._first_backoff_s
        while self._pending:
            kind, write = self._pending[0]
            try:
                await self._gate.run(write)
            except RedisUnavailable:
                await asyncio.sleep(backoff)
                backoff = min(self._max_backoff_s, backoff * 2)
                continue
            except Exception:
                logger.exception("accounting write failed permanently (%s); dropped", kind)
                self._pending.popleft()
                metrics.record_accounting(kind, "dropped", len(self._pending))
                continue
            self._pending.popleft()
            backoff = self._first_backoff_s
            metrics.record_accounting(kind, "retried", len(self._pending))
        self._empty.set()
