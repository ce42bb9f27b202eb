"""Authenticating requests by API key, with a short per-replica cache."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict

from ..config import TenancyConfig
from ..errors import AuthenticationError, PermissionDeniedError, ServiceUnavailableError
from ..redis_gate import RedisGate, RedisUnavailable
from .keys import KeyStore, MissingTeam, Principal, hash_key

logger = logging.getLogger(__name__)

_MAX_CACHED_KEYS = 10_000


class Authenticator:
    """Resolves ``Authorization: Bearer <key>`` to a principal.

    A lookup is trusted for ``auth_cache_ttl_s`` (so a revocation reaches every replica within
    that time). While Redis is unreachable, keys seen valid within ``stale_auth_max_s`` (at most
    30 s, see TenancyConfig) keep working and unknown keys get 503, not 401: the gateway cannot
    tell. A key whose team record is missing gets 403 and is never cached (fail closed).
    """

    def __init__(self, store: KeyStore, gate: RedisGate, config: TenancyConfig) -> None:
        self._store = store
        self._gate = gate
        self._config = config
        self._cache: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    async def authenticate(self, authorization: str | None) -> Principal:
        """The caller behind an ``Authorization`` header value.

        Raises:
            AuthenticationError: missing, malformed, unknown or revoked key.
            ServiceUnavailableError: Redis is unreachable and the key was not seen recently.
        """
        scheme, _, api_key = (authorization or "").partition(" ")
        api_key = api_key.strip()
        if scheme.lower() != "bearer" or not api_key:
            raise AuthenticationError()
        digest = hash_key(api_key)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and now - cached[1] < self._config.auth_cache_ttl_s:
            return cached[0]
        try:
            principal = await self._gate.run(lambda _: self._store.lookup(api_key))
        except MissingTeam:
            self._cache.pop(digest, None)
            logger.warning("key refused: its team record is missing")
            raise PermissionDeniedError(
                message="Your API key's team is not configured on this deployment. Contact the platform team.",
                code="team_not_found",
            ) from None
        except RedisUnavailable:
            if cached is not None and now - cached[1] < self._config.stale_auth_max_s:
                return cached[0]
            raise ServiceUnavailableError(
                message="Authentication is temporarily unavailable. Please retry shortly.",
                code="auth_unavailable",
                headers={"Retry-After": "1"},
            ) from None
        if principal is None:
            self._cache.pop(digest, None)
            raise AuthenticationError()
        self._cache[digest] = (principal, now)
        self._cache.move_to_end(digest)
        while len(self._cache) > _MAX_CACHED_KEYS:
            self._cache.popitem(last=False)
        return principal
