"""The Redis prompt cache: exact-match answers for deterministic requests.

A request is cacheable when every choice is deterministic (temperature 0, or an explicit seed).
Its key hashes a per-team secret salt (teams never share entries, and nobody can probe another
team's entries), the model and revision, the moderation policy version, the prompt token ids and
every sampling parameter that changes output. Only complete answers are stored: the caller
passes ``None`` for anything blocked, failed or cancelled.

Concurrent identical misses are coalesced across all replicas: the first takes a lock in Redis
and generates; the others poll for its answer (or the lock's release) and replay it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

from .config import CacheConfig
from .engine.types import EngineRequest
from .redis_gate import RedisGate, RedisUnavailable

logger = logging.getLogger(__name__)

CacheStatus = Literal["hit", "miss", "bypass"]
_POLL_S = 0.05

# KEYS: entry, lock. ARGV: lock token, lock ttl ms. Returns {1, value} hit, {2} lock taken, {0} wait.
_ACQUIRE = """
local value = redis.call('GET', KEYS[1])
if value then return {1, value} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2} end
return {0}
"""

# KEYS: entry, lock, index. ARGV: token, value ('' = nothing to store), ttl s, max entries.
_FINISH = """
if ARGV[2] ~= '' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  redis.call('ZADD', KEYS[3], now, KEYS[1])
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[3]))
  local excess = redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[4])
  if excess > 0 then
    for _, old in ipairs(redis.call('ZPOPMIN', KEYS[3], excess)) do
      if old ~= KEYS[1] and string.sub(old, 1, 9) == 'ms:cache:' then redis.call('DEL', old) end
    end
  end
end
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
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
    return all(c.sampling.temperature == 0 or c.sampling.seed is not None for c in choices)


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

    async def acquire(self, key: str) -> Flight:
        """A hit, or the right to generate (miss), or a bypass when Redis fails or waiting times out."""
        token = secrets.token_hex(8)
        lock_ms = int(self._config.single_flight_timeout_s * 1000)
        deadline = time.monotonic() + self._config.single_flight_timeout_s
        try:
            while True:
                found = await self._gate.run(lambda _: self._acquire(keys=[key, f"{key}:lock"], args=[token, lock_ms]))
                if found[0] == 1:
                    return Flight("hit", entry=CachedResponse.from_json(found[1]))
                if found[0] == 2:
                    return Flight("miss", cache=self, key=key, token=token)
                if time.monotonic() > deadline:
                    return Flight("bypass")
                await asyncio.sleep(_POLL_S)
        except RedisUnavailable:
            logger.warning("prompt cache bypassed: redis unreachable")
            return Flight("bypass")

    async def _finish(self, key: str, token: str, answer: CachedResponse | None) -> None:
        value = answer.to_json() if answer is not None else ""
        if len(value.encode()) > self._config.max_entry_bytes:
            value = ""
        try:
            await self._gate.run(lambda _: self._finish_script(
                keys=[key, f"{key}:lock", "ms:cache:index"],
                args=[token, value, self._config.ttl_s, self._config.max_entries],
            ))
        except RedisUnavailable:
            logger.warning("prompt cache store skipped: redis unreachable")
