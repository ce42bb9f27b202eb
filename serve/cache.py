"""The Redis prompt cache: exact-match answers for deterministic requests.

A request is cacheable when every choice is deterministic (temperature 0, or an explicit seed).
Its key hashes a per-team secret salt (teams never share entries, and nobody can probe another
team's entries), the model and revision, the moderation policy version, the prompt token ids and
every sampling parameter that changes output. Only complete answers are stored: the caller
passes ``None`` for anything blocked, failed or cancelled.

Concurrent identical misses are coalesced across all replicas: the first takes a lock in Redis
and generates; the others wait for its answer (or the lock's release) and replay it. A waiter is
woken by a pub/sub notification the leader's finishing script publishes (one subscription per
replica, shared by all its waiters); it re-checks on an exponential backoff too (50 ms doubling
to 2 s), so a lost notification or a pub/sub outage costs latency, never correctness, and idle
waiting never polls Redis every 50 ms.

Eviction: the accounting data (keys, quotas, usage) must never be evicted, so the Redis holding it
runs ``maxmemory-policy noeviction``. This cache bounds itself (``max_entries``, entry size, TTL);
when Redis is full anyway, a write refused with OOM means "not stored", never a failed request.
It may also live in its own Redis (``MISTRAL_SERVE_CACHE_REDIS_URL``), which can evict freely.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

from .config import CacheConfig
from .engine.sampling import is_greedy
from .engine.types import EngineRequest
from .redis_gate import RedisGate, RedisRefused, RedisUnavailable

logger = logging.getLogger(__name__)

CacheStatus = Literal["hit", "miss", "bypass"]
# The channel the finishing script publishes a released key on (a channel, not a key).
DONE_CHANNEL = "ms:cache:done"
_FIRST_RECHECK_S = 0.05
_MAX_RECHECK_S = 2.0

# KEYS: entry, lock. ARGV: lock token, lock ttl ms. Returns {1, value} hit, {2} lock taken, {0} wait.
_ACQUIRE = """
local value = redis.call('GET', KEYS[1])
if value then return {1, value} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2} end
return {0}
"""

# KEYS: entry, lock, index. ARGV: token, value ('' = nothing to store), ttl s, max entries,
# notification channel. Returns the entries evicted from the index: the caller deletes them in a
# second command, so that the script touches only the keys it declares.
_FINISH = """
local evicted = {}
if ARGV[2] ~= '' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  redis.call('ZADD', KEYS[3], now, KEYS[1])
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[3]))
  local excess = redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[4])
  if excess > 0 then
    for _, old in ipairs(redis.call('ZPOPMIN', KEYS[3], excess)) do
      if old ~= KEYS[1] then evicted[#evicted + 1] = old end
    end
  end
end
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
  redis.call('PUBLISH', ARGV[5], KEYS[1])
end
return evicted
"""


@dataclass(frozen=True)
class CachedChoice:
    """One stored choice."""

    text: str
    finish_reason: str
    completion_tokens: int


@dataclass(frozen=True)
class CachedResponse:
    """A stored answer: enough to rebuild the JSON response or replay it as a stream."""

    choices: tuple[CachedChoice, ...]
    prompt_tokens: int

    def to_json(self) -> str:
        """Serialized form."""
        return json.dumps(asdict(self), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: str) -> CachedResponse:
        """Parses the serialized form."""
        data = json.loads(raw)
        return cls(choices=tuple(CachedChoice(**c) for c in data["choices"]), prompt_tokens=data["prompt_tokens"])


def is_deterministic(choices: Sequence[EngineRequest]) -> bool:
    """Whether every choice's output is fixed by its inputs (greedy, or seeded sampling)."""
    return all(is_greedy(c.sampling) or c.sampling.seed is not None for c in choices)


def cache_key(*, salt: str, model: str, policy_version: str, endpoint: str, stream: bool,
              choices: Sequence[EngineRequest]) -> str:
    """The Redis key of a request's answer.

    ``stream`` is part of the key because the output rails check the two modes differently (a
    stream window by window, a whole answer whole): an answer is only replayed to the mode that
    checked it.
    """
    canonical = {
        "salt": salt,
        "model": model,
        "policy": policy_version,
        "endpoint": endpoint,
        "stream": stream,
        "choices": [
            {"prompt": list(c.prompt_token_ids), **asdict(c.sampling)} for c in choices
        ],
    }
    digest = hashlib.sha256(json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return f"ms:cache:{digest}"


class Flight:
    """One request's dealings with the cache; :meth:`finish` must be called once it is done."""

    def __init__(self, status: CacheStatus, entry: CachedResponse | None = None,
                 cache: PromptCache | None = None, key: str = "", token: str = "") -> None:
        self.status = status
        self.entry = entry
        self._cache, self._key, self._token = cache, key, token

    async def finish(self, answer: CachedResponse | None) -> None:
        """Stores a complete answer (leader only) and releases waiters; ``None`` stores nothing."""
        if self._cache is not None and self.status == "miss":
            await self._cache._finish(self._key, self._token, answer)
            self._cache = None


class PromptCache:
    """Exact-match cache with single-flight, degrading to a bypass when Redis fails."""

    def __init__(self, gate: RedisGate, config: CacheConfig) -> None:
        self._gate = gate
        self._config = config
        self._acquire = gate.client.register_script(_ACQUIRE)
        self._finish_script = gate.client.register_script(_FINISH)
        self._released: dict[str, asyncio.Event] = {}  # per key: set when its lock is released
        self._waiting: collections.Counter[str] = collections.Counter()  # local waiters per key
        self._listener: asyncio.Task | None = None
        self.subscribed = False  # whether release notifications are arriving (observable in tests)

    async def acquire(self, key: str) -> Flight:
        """A hit, or the right to generate (miss), or a bypass when Redis fails or waiting times out."""
        token = secrets.token_hex(8)
        lock_ms = int(self._config.single_flight_timeout_s * 1000)
        deadline = time.monotonic() + self._config.single_flight_timeout_s
        recheck_s = _FIRST_RECHECK_S
        self._waiting[key] += 1
        try:
            while True:
                # NOTE: the waiter registers before it checks, so a release published between the
                # check and the wait still wakes it.
                released = self._released.setdefault(key, asyncio.Event())
                found = await self._gate.run(lambda _: self._acquire(keys=[key, f"{key}:lock"], args=[token, lock_ms]))
                if found[0] == 1:
                    return Flight("hit", entry=CachedResponse.from_json(found[1]))
                if found[0] == 2:
                    return Flight("miss", cache=self, key=key, token=token)
                left = deadline - time.monotonic()
                if left <= 0:
                    return Flight("bypass")
                self._listen()
                try:
                    await asyncio.wait_for(released.wait(), min(recheck_s, left))
                except TimeoutError:
                    recheck_s = min(_MAX_RECHECK_S, recheck_s * 2)
        except RedisUnavailable:
            logger.warning("prompt cache bypassed: redis unreachable")
            return Flight("bypass")
        finally:
            self._waiting[key] -= 1
            if self._waiting[key] <= 0:
                del self._waiting[key]
                self._released.pop(key, None)

    def _listen(self) -> None:
        """Starts this replica's subscription to release notifications (while anyone waits)."""
        if self._listener is None or self._listener.done():
            self._listener = asyncio.ensure_future(self._listen_loop())

    async def _listen_loop(self) -> None:
        pubsub = self._gate.client.pubsub()
        try:
            await pubsub.subscribe(DONE_CHANNEL)
            self.subscribed = True
            while self._waiting:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None and message.get("type") == "message":
                    event = self._released.pop(message["data"], None)
                    if event is not None:
                        event.set()
        except Exception:  # noqa: BLE001 - waiters fall back to their backoff re-checks
            logger.warning("prompt cache notifications unavailable; waiters re-check on a backoff")
        finally:
            self.subscribed = False
            try:
                await pubsub.aclose()
            except Exception:  # noqa: BLE001
                pass

    async def _finish(self, key: str, token: str, answer: CachedResponse | None) -> None:
        value = answer.to_json() if answer is not None else ""
        if len(value.encode()) > self._config.max_entry_bytes:
            value = ""
        try:
            evicted = await self._gate.run(lambda _: self._finish_script(
                keys=[key, f"{key}:lock", "ms:cache:index"],
                args=[token, value, self._config.ttl_s, self._config.max_entries, DONE_CHANNEL],
            ))
            evicted = [old for old in evicted or () if old.startswith("ms:cache:")]
            if evicted:
                await self._gate.run(lambda client: client.delete(*evicted))
        except RedisRefused as error:
            # OOM under noeviction: Redis keeps accounting data and refuses the entry: not stored.
            logger.warning("prompt cache store refused by redis (%s): not stored", error)
            if value:
                await self._finish(key, token, None)  # still release the lock for the waiters
        except RedisUnavailable:
            logger.warning("prompt cache store skipped: redis unreachable")
