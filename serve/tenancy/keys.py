"""API keys and teams in Redis. Only a SHA-256 of each key is stored; the key is shown once.

Layout (all under ``ms:``):
    ms:key:<sha256>   hash  key_id, team, models (JSON), created        -- the lookup path
    ms:keys           hash  key_id -> JSON KeyInfo (with the sha256)    -- listing and revocation
    ms:team:<name>    hash  rpm, tpm, policy, salt                      -- limits and cache salt
    ms:teams          set   team names
"""

from __future__ import annotations

import builtins
import hashlib
import json
import re
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import cast

import redis.asyncio as aioredis

KEY_PREFIX = "ms-"
_TEAM_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")

# One round trip: the key record and its team's record.
_LOOKUP = """
local key = redis.call('HGETALL', KEYS[1])
if #key == 0 then return {} end
local team = nil
for i = 1, #key, 2 do if key[i] == 'team' then team = key[i + 1] end end
return {key, redis.call('HGETALL', 'ms:team:' .. team)}
"""


class InvalidTeamName(ValueError):
    """Team names are lowercase letters, digits, '.', '_' and '-' (at most 64)."""


@dataclass(frozen=True)
class Team:
    """A product team: its limits (None: the platform default), policy and cache salt."""

    name: str
    rpm: int | None = None
    tpm: int | None = None
    policy: str | None = None
    salt: str = ""


@dataclass(frozen=True)
class KeyInfo:
    """What is known about a key besides the key itself."""

    key_id: str
    team: str
    models: tuple[str, ...] = ()
    created: float = 0.0
    revoked: float | None = None
    sha256: str = field(default="", repr=False)


@dataclass(frozen=True)
class Principal:
    """The caller behind an authenticated request."""

    key_id: str
    team: Team
    models: tuple[str, ...] = ()

    def may_use(self, model: str) -> bool:
        """Whether the key grants ``model`` (no list: every model)."""
        return not self.models or model in self.models


def hash_key(api_key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(api_key.encode()).hexdigest()


def _parse_limit(value: str | None) -> int | None:
    return None if value in (None, "") else int(value)


def _team(name: str, fields: dict[str, str]) -> Team:
    return Team(
        name=name,
        rpm=_parse_limit(fields.get("rpm")),
        tpm=_parse_limit(fields.get("tpm")),
        policy=fields.get("policy") or None,
        salt=fields.get("salt", ""),
    )


class KeyStore:
    """Creates, lists, revokes and looks up keys.

    Args:
        client: An async Redis client with ``decode_responses=True``.
    """

    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client
        self._lookup = client.register_script(_LOOKUP)

    async def set_team(self, name: str, *, rpm: int | None = None, tpm: int | None = None,
                       policy: str | None = None) -> Team:
        """Creates a team, or changes the given fields of an existing one."""
        if not _TEAM_NAME.match(name):
            raise InvalidTeamName(name)
        key = f"ms:team:{name}"
        # The salt is created once and never changes: it keeps teams' cache entries apart.
        await self._redis.hsetnx(key, "salt", secrets.token_hex(16))
        updates = {k: v for k, v in {"rpm": rpm, "tpm": tpm, "policy": policy}.items() if v is not None}
        if updates:
            await self._redis.hset(key, mapping={k: str(v) for k, v in updates.items()})
        await self._redis.sadd("ms:teams", name)
        return _team(name, cast("dict[str, str]", await self._redis.hgetall(key)))

    async def create(self, team: str, *, rpm: int | None = None, tpm: int | None = None,
                     policy: str | None = None, models: tuple[str, ...] = ()) -> tuple[str, KeyInfo]:
        """Creates a key for ``team`` (creating or updating the team's limits/policy).

        Returns:
            The key itself (shown once, never stored) and its info.
        """
        await self.set_team(team, rpm=rpm, tpm=tpm, policy=policy)
        key_id = secrets.token_hex(4)
        api_key = f"{KEY_PREFIX}{key_id}-{secrets.token_urlsafe(24)}"
        info = KeyInfo(key_id=key_id, team=team, models=tuple(models), created=time.time(), sha256=hash_key(api_key))
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(f"ms:key:{info.sha256}", mapping={
                "key_id": key_id, "team": team, "models": json.dumps(list(models)), "created": str(info.created),
            })
            pipe.hset("ms:keys", key_id, json.dumps(asdict(info)))
            await pipe.execute()
        return api_key, info

    async def list(self, team: str | None = None) -> list[KeyInfo]:
        """All keys (revoked ones included, marked), optionally of one team, oldest first."""
        infos = [_key_info(raw) for raw in (await self._redis.hgetall("ms:keys")).values()]
        return sorted((i for i in infos if team is None or i.team == team), key=lambda i: i.created)

    async def revoke(self, key_id: str) -> KeyInfo | None:
        """Revokes a key; lookups stop finding it at once (replicas within their cache TTL)."""
        raw = await self._redis.hget("ms:keys", key_id)
        if raw is None:
            return None
        info = _key_info(raw)
        if info.revoked is None:
            info = KeyInfo(**{**asdict(info), "revoked": time.time()})
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(f"ms:key:{info.sha256}")
                pipe.hset("ms:keys", key_id, json.dumps(asdict(info)))
                await pipe.execute()
        return info

    async def lookup(self, api_key: str) -> Principal | None:
        """The principal of a key, or None for an unknown or revoked key."""
        found = await self._lookup(keys=[f"ms:key:{hash_key(api_key)}"])
        if not found:
            return None
        key_fields, team_fields = (dict(zip(part[::2], part[1::2])) for part in found)
        return Principal(
            key_id=key_fields["key_id"],
            team=_team(key_fields["team"], team_fields),
            models=tuple(json.loads(key_fields.get("models", "[]"))),
        )

    async def teams(self) -> builtins.list[str]:  # NOTE: `list` here is the method above
        """Names of all teams."""
        return sorted(cast("set[str]", await self._redis.smembers("ms:teams")))


def _key_info(raw: str | bytes) -> KeyInfo:
    data = json.loads(raw)
    data["models"] = tuple(data.get("models", ()))
    return KeyInfo(**data)
