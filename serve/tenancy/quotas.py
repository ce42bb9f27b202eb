"""Per-team requests- and tokens-per-minute, enforced atomically across all gateway replicas.

Each limit is a token bucket in Redis that refills continuously at ``limit / 60`` per second up
to ``limit``. Admission is one Lua script (one round trip) that checks and takes from both
buckets together, using Redis' clock so every replica agrees. A request reserves its prompt
tokens plus its ``max_tokens`` (as OpenAI counts them); :meth:`QuotaManager.settle` gives back
what generation did not use, so the tokens limit is never exceeded, not even transiently.
"""

from __future__ import annotations

import logging
import math
import secrets
from dataclasses import dataclass, field

from ..config import TenancyConfig
from ..errors import InvalidRequestError, RateLimitError, ServiceUnavailableError, TokenRateLimitError
from ..redis_gate import RedisGate, RedisUnavailable
from .keys import Team
from .outbox import AccountingOutbox

logger = logging.getLogger(__name__)

# KEYS: requests bucket, tokens bucket. ARGV: rpm, tpm, cost (tokens); a limit <= 0 is no limit.
# Returns {admitted, requests level, tokens level} (levels as strings: Lua numbers would truncate).
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local function level(key, limit)
  local v = redis.call('HMGET', key, 'level', 'ts')
  if not v[1] then return limit end
  return math.min(limit, tonumber(v[1]) + (now - tonumber(v[2])) * limit / 60)
end
local rpm, tpm, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local r = rpm > 0 and level(KEYS[1], rpm) or 0
local k = tpm > 0 and level(KEYS[2], tpm) or 0
local ok = (rpm <= 0 or r >= 1) and (tpm <= 0 or k >= cost)
if ok then
  if rpm > 0 then r = r - 1; redis.call('HSET', KEYS[1], 'level', r, 'ts', now); redis.call('EXPIRE', KEYS[1], 120) end
  if tpm > 0 then k = k - cost; redis.call('HSET', KEYS[2], 'level', k, 'ts', now); redis.call('EXPIRE', KEYS[2], 120) end
end
return {ok and 1 or 0, tostring(r), tostring(k)}
"""

# KEYS: tokens bucket, applied marker. ARGV: tpm, refund, marker ttl s. Idempotent: a retried
# refund that Redis already applied is a no-op.
_REFUND = """
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[3]) then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local limit, refund = tonumber(ARGV[1]), tonumber(ARGV[2])
local v = redis.call('HMGET', KEYS[1], 'level', 'ts')
if not v[1] then return 0 end
local level = math.min(limit, tonumber(v[1]) + (now - tonumber(v[2])) * limit / 60 + refund)
redis.call('HSET', KEYS[1], 'level', level, 'ts', now)
return 1
"""


def _duration(seconds: float) -> str:
    """OpenAI's reset format: ``"1s"``, ``"6m0s"``."""
    minutes, secs = divmod(max(0, math.ceil(seconds)), 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


@dataclass
class Admission:
    """An admitted request: its rate-limit headers and the tokens it reserved."""

    team: Team
    reserved_tokens: int
    tpm: int
    headers: dict[str, str] = field(default_factory=dict)


class QuotaManager:
    """Admits requests against their team's limits.

    Args:
        gate: Redis access.
        config: Default limits and the behaviour when Redis is unreachable.
        outbox: Where refunds Redis does not take at once wait for retrying (default: its own).
    """

    def __init__(self, gate: RedisGate, config: TenancyConfig, outbox: AccountingOutbox | None = None) -> None:
        self._gate = gate
        self._config = config
        self._outbox = outbox or AccountingOutbox(gate)
        self._admit = gate.client.register_script(_ADMIT)
        self._refund = gate.client.register_script(_REFUND)

    def limits(self, team: Team) -> tuple[int, int]:
        """The team's (rpm, tpm), falling back to the platform defaults."""
        rpm = self._config.default_rpm if team.rpm is None else team.rpm
        tpm = self._config.default_tpm if team.tpm is None else team.tpm
        return rpm, tpm

    async def admit(self, team: Team, tokens: int) -> Admission:
        """Takes one request and ``tokens`` from the team's buckets.

        Raises:
            RateLimitError: a limit is exhausted (429 with Retry-After).
            InvalidRequestError: the request alone needs more tokens than the per-minute limit.
            ServiceUnavailableError: Redis is unreachable and the setting says reject.
        """
        rpm, tpm = self.limits(team)
        if tpm > 0 and tokens > tpm:
            raise InvalidRequestError(
                message=f"Request too large: it may use {tokens} tokens but your team's limit is {tpm} "
                "tokens per minute. Lower max_tokens or shorten the prompt.",
                param="max_tokens",
                code="request_too_large",
            )
        if rpm <= 0 and tpm <= 0:
            return Admission(team=team, reserved_tokens=0, tpm=0)
        keys = [f"ms:quota:{team.name}:requests", f"ms:quota:{team.name}:tokens"]
        try:
            ok, requests_left, tokens_left = await self._gate.run(
                lambda _: self._admit(keys=keys, args=[rpm, tpm, tokens])
            )
        except RedisUnavailable as error:
            logger.warning("quota check failed: redis %s (policy: %s)", error, self._config.quota_on_redis_error)
            if self._config.quota_on_redis_error == "reject":
                raise ServiceUnavailableError(
                    message="Rate limiting is temporarily unavailable. Please retry shortly.",
                    code="quota_unavailable", headers={"Retry-After": "1"},
                ) from None
            return Admission(team=team, reserved_tokens=0, tpm=0)
        requests_left, tokens_left = float(requests_left), float(tokens_left)
        headers = self._headers(rpm, tpm, requests_left, tokens_left)
        if not ok:
            raise self._rejection(rpm, tpm, tokens, requests_left, tokens_left, headers)
        return Admission(team=team, reserved_tokens=tokens if tpm > 0 else 0, tpm=tpm, headers=headers)

    async def settle(self, admission: Admission, used_tokens: int) -> None:
        """Returns the reserved tokens that generation did not use."""
        refund = admission.reserved_tokens - used_tokens
        if refund <= 0 or admission.tpm <= 0:
            return
        keys = [f"ms:quota:{admission.team.name}:tokens", f"ms:quota:refund:{secrets.token_hex(16)}"]
        await self._outbox.submit("refund", lambda _: self._refund(keys=keys, args=[admission.tpm, refund, 3600]))

    @staticmethod
    def _headers(rpm: int, tpm: int, requests_left: float, tokens_left: float) -> dict[str, str]:
        headers: dict[str, str] = {}
        if rpm > 0:
            headers |= {
                "x-ratelimit-limit-requests": str(rpm),
                "x-ratelimit-remaining-requests": str(max(0, math.floor(requests_left))),
                "x-ratelimit-reset-requests": _duration((rpm - requests_left) * 60 / rpm),
            }
        if tpm > 0:
            headers |= {
                "x-ratelimit-limit-tokens": str(tpm),
                "x-ratelimit-remaining-tokens": str(max(0, math.floor(tokens_left))),
                "x-ratelimit-reset-tokens": _duration((tpm - tokens_left) * 60 / tpm),
            }
        return headers

    @staticmethod
    def _rejection(rpm: int, tpm: int, tokens: int, requests_left: float, tokens_left: float,
                   headers: dict[str, str]) -> RateLimitError:
        waits = []
        if rpm > 0 and requests_left < 1:
            waits.append(((1 - requests_left) * 60 / rpm, "requests"))
        if tpm > 0 and tokens_left < tokens:
            waits.append(((tokens - tokens_left) * 60 / tpm, "tokens"))
        wait, kind = max(waits)
        error_class = RateLimitError if kind == "requests" else TokenRateLimitError
        return error_class(
            message=f"Rate limit reached for your team's {kind} per minute. Retry after {math.ceil(wait)}s.",
            code="rate_limit_exceeded",
            headers={**headers, "Retry-After": str(max(1, math.ceil(wait)))},
        )
