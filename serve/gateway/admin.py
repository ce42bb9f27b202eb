"""Admin endpoints for keys and usage, protected by a separate admin token."""

from __future__ import annotations

import datetime as dt
import hmac
from dataclasses import asdict

from fastapi import APIRouter, Depends, Header, Query
from pydantic import BaseModel, ConfigDict, Field

from ..errors import AuthenticationError, InvalidRequestError, NotFoundError, ServiceUnavailableError
from ..redis_gate import RedisGate, RedisUnavailable
from ..tenancy.keys import InvalidTeamName, KeyInfo, KeyStore
from ..tenancy.usage import usage_report


class CreateKeyRequest(BaseModel):
    """``POST /admin/keys``."""

    model_config = ConfigDict(extra="forbid")

    team: str = Field(description="Team the key belongs to (created if new).")
    rpm: int | None = Field(default=None, ge=0, description="Team requests per minute (0: unlimited).")
    tpm: int | None = Field(default=None, ge=0, description="Team tokens per minute (0: unlimited).")
    policy: str | None = Field(default=None, description="Team moderation policy.")
    models: list[str] = Field(default_factory=list, description="Models the key may use (empty: all).")


def _public(info: KeyInfo) -> dict:
    data = asdict(info)
    data.pop("sha256")
    return data


async def _on_redis(gate: RedisGate, operation):
    """Awaits a Redis operation through the gate; 503 when Redis is unreachable."""
    try:
        return await gate.run(lambda _: operation)
    except RedisUnavailable:
        operation.close()  # never awaited when the breaker was open
        raise ServiceUnavailableError(message="Redis is unreachable.", code="redis_unavailable") from None


async def _usage(gate: RedisGate, store: KeyStore, team: str | None, since: dt.date | None, by_key: bool) -> dict:
    teams = [team] if team else await _on_redis(gate, store.teams())
    keys: dict[str, list[str]] | None = None
    if by_key:
        keys = {}
        for info in await _on_redis(gate, store.list(team)):
            keys.setdefault(info.team, []).append(info.key_id)
    try:
        rows = await _on_redis(gate, usage_report(gate.client, teams, since, keys))
    except ValueError as error:
        raise InvalidRequestError(message=str(error), param="since", code="invalid_value") from None
    return {"since": (since or dt.datetime.now(dt.UTC).date()).isoformat(),
            "data": [r.as_dict() for r in rows]}


def create_admin_router(gate: RedisGate, admin_token: str) -> APIRouter:
    """The ``/admin`` routes; every call needs ``Authorization: Bearer <admin token>``."""
    store = KeyStore(gate.client)

    async def require_admin(authorization: str | None = Header(default=None)) -> None:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), admin_token.encode()):
            raise AuthenticationError("Incorrect or missing admin token.")

    async def redis(operation):
        return await _on_redis(gate, operation)

    router = APIRouter(prefix="/admin", dependencies=[Depends(require_admin)], tags=["admin"])

    @router.post("/keys", status_code=201)
    async def create_key(body: CreateKeyRequest) -> dict:
        """Creates a key; the response is the only time the key itself is shown."""
        try:
            api_key, info = await redis(store.create(
                body.team, rpm=body.rpm, tpm=body.tpm, policy=body.policy, models=tuple(body.models)
            ))
        except InvalidTeamName:
            raise InvalidRequestError(
                message="Team names are lowercase letters, digits, '.', '_' and '-' (at most 64).",
                param="team", code="invalid_value",
            ) from None
        return {"key": api_key, **_public(info)}

    @router.get("/keys")
    async def list_keys(team: str | None = None) -> dict:
        """Lists keys (never the keys themselves)."""
        return {"data": [_public(i) for i in await redis(store.list(team))]}

    @router.delete("/keys/{key_id}")
    async def revoke_key(key_id: str) -> dict:
        """Revokes a key."""
        info = await redis(store.revoke(key_id))
        if info is None:
            raise NotFoundError(message="No such key.", param="key_id", code="key_not_found")
        return _public(info)

    @router.get("/usage")
    async def usage(team: str | None = None, since: dt.date | None = None,
                    by_key: bool = Query(default=False)) -> dict:
        """Requests and tokens per team (and per key) from ``since`` (a UTC day, default today)."""
        return await _usage(gate, store, team, since, by_key)

    return router
