"""Usage accounting per team and per key, by UTC day, in Redis.

    ms:usage:team:<team>:<YYYY-MM-DD>  hash  requests, prompt_tokens, completion_tokens, cached_requests
    ms:usage:key:<key_id>:<YYYY-MM-DD> hash  (same fields)
    ms:usage:user:<team>:<user>:<YYYY-MM-DD> hash  (same fields; OpenAI's `user`, when a request sets it)
    ms:usage:applied:<record id>       string  marks a record as counted (idempotent retries), 1 day

Usage is billing data: a record Redis does not take at once is buffered and retried until it does
(:mod:`serve.tenancy.outbox`), and it counts only requests that were served: the pipeline records
nothing for a request the platform refused.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from dataclasses import asdict, dataclass

import redis.asyncio as aioredis

from ..redis_gate import RedisGate
from .keys import Principal
from .outbox import AccountingOutbox

logger = logging.getLogger(__name__)

_FIELDS = ("requests", "prompt_tokens", "completion_tokens", "cached_requests")
_RETENTION_S = 400 * 24 * 3600
_APPLIED_TTL_S = 24 * 3600
MAX_DAYS = 400

# KEYS: applied marker, then the day hashes (team, key, and the end user's when set). ARGV: requests,
# prompt, completion, cached, retention s, marker ttl s. Counts a record once: a retry of a write
# Redis already applied is a no-op.
_RECORD = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[6]) then return 0 end
local names = {'requests', 'prompt_tokens', 'completion_tokens', 'cached_requests'}
for k = 2, #KEYS do
  for i = 1, 4 do redis.call('HINCRBY', KEYS[k], names[i], ARGV[i]) end
  redis.call('EXPIRE', KEYS[k], ARGV[5])
end
return 1
"""


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
    """Counts each served request for its team and key (one script call, retried until it lands).

    Args:
        gate: Redis access.
        outbox: Where writes Redis does not take at once wait (default: one of its own).
    """

    def __init__(self, gate: RedisGate, outbox: AccountingOutbox | None = None) -> None:
        self._gate = gate
        self.outbox = outbox or AccountingOutbox(gate)
        self._script = gate.client.register_script(_RECORD)

    async def record(self, principal: Principal, prompt_tokens: int, completion_tokens: int, cached: bool,
                     user: str | None = None) -> bool:
        """Adds one served request's usage (under today's UTC date, even when written later).

        ``user`` (OpenAI's end-user id, as the client sent it) is also counted under its team:
        ``ms:usage:user:<team>:<user>:<day>``.

        Returns:
            True when Redis took it at once; False when it was buffered for retrying.
        """
        day = _today().isoformat()
        record_id = secrets.token_hex(16)
        keys = [f"ms:usage:applied:{record_id}", f"ms:usage:team:{principal.team.name}:{day}",
                f"ms:usage:key:{principal.key_id}:{day}"]
        if user:
            keys.append(f"ms:usage:user:{principal.team.name}:{user}:{day}")
        args = [1, prompt_tokens, completion_tokens, int(cached), _RETENTION_S, _APPLIED_TTL_S]
        written = await self.outbox.submit("usage", lambda _: self._script(keys=keys, args=args))
        if not written:
            logger.warning("usage buffered for retrying: redis did not take it (%d pending)", self.outbox.pending)
        return written


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
