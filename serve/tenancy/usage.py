"""Usage accounting per team and per key, by UTC day, in Redis.

    ms:usage:team:<team>:<YYYY-MM-DD>  hash  requests, prompt_tokens, completion_tokens, cached_requests
    ms:usage:key:<key_id>:<YYYY-MM-DD> hash  (same fields)
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass

import redis.asyncio as aioredis

from ..redis_gate import RedisGate, RedisUnavailable
from .keys import Principal

logger = logging.getLogger(__name__)

_FIELDS = ("requests", "prompt_tokens", "completion_tokens", "cached_requests")
_RETENTION_S = 400 * 24 * 3600
MAX_DAYS = 400


@dataclass
class UsageRow:
    """Totals for one team or key over a period."""

    team: str
    key_id: str | None = None
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_requests: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict:
        """JSON-ready form, with the total."""
        return asdict(self) | {"total_tokens": self.total_tokens}


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


class UsageRecorder:
    """Counts each finished request for its team and key (one pipelined round trip)."""

    def __init__(self, gate: RedisGate) -> None:
        self._gate = gate

    async def record(self, principal: Principal, prompt_tokens: int, completion_tokens: int, cached: bool,
                     user: str | None = None) -> bool:
        """Adds one request's usage; returns False (and logs) when Redis is unreachable.

        ``user`` (OpenAI's end-user id, as the client sent it) is also counted under its team:
        ``ms:usage:user:<team>:<user>:<day>``.
        """
        day = _today().isoformat()
        increments = {"requests": 1, "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "cached_requests": int(cached)}

        async def write(client: aioredis.Redis) -> None:
            async with client.pipeline(transaction=False) as pipe:
                keys = [f"ms:usage:team:{principal.team.name}:{day}", f"ms:usage:key:{principal.key_id}:{day}"]
                if user:
                    keys.append(f"ms:usage:user:{principal.team.name}:{user}:{day}")
                for key in keys:
                    for name, value in increments.items():
                        pipe.hincrby(key, name, value)
                    pipe.expire(key, _RETENTION_S)
                await pipe.execute()

        try:
            await self._gate.run(write)
            return True
        except RedisUnavailable:
            logger.warning("usage not recorded: redis unreachable")
            return False


async def usage_report(client: aioredis.Redis, teams: list[str], since: dt.date | None = None,
                       by_key: dict[str, list[str]] | None = None) -> list[UsageRow]:
    """Totals per team (and per key when ``by_key`` maps teams to key ids) since a day (default today).

    Raises:
        ValueError: ``since`` is in the future or more than ``MAX_DAYS`` ago.
    """
    today = _today()
    since = since or today
    days = (today - since).days + 1
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"since must be within the last {MAX_DAYS} days")
    dates = [(since + dt.timedelta(days=i)).isoformat() for i in range(days)]
    rows: list[UsageRow] = []
    for team in teams:
        rows.append(await _total(client, f"ms:usage:team:{team}", dates, UsageRow(team=team)))
        for key_id in (by_key or {}).get(team, []):
            rows.append(await _total(client, f"ms:usage:key:{key_id}", dates, UsageRow(team=team, key_id=key_id)))
    return rows


async def _total(client: aioredis.Redis, prefix: str, dates: list[str], row: UsageRow) -> UsageRow:
    async with client.pipeline(transaction=False) as pipe:
        for date in dates:
            pipe.hmget(f"{prefix}:{date}", *_FIELDS)
        for values in await pipe.execute():
            for name, value in zip(_FIELDS, values):
                setattr(row, name, getattr(row, name) + int(value or 0))
    return row
