"""How the gateway reaches moderation: a small Protocol, and its Ray Serve handle implementation.

:class:`~guardrails.moderator.Moderator` satisfies the same Protocol in-process, so the pipeline can be
tested (and offline-only setups run) without Ray. Ray's exceptions become
:class:`ModerationUnavailableError` here, which the gateway maps to its own typed error.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from .moderations import ModerationResponse
from .policy import PolicyInfo, UnknownPolicyError
from .stream import StreamGuard
from .verdict import Verdict

logger = logging.getLogger(__name__)


class ModerationUnavailableError(RuntimeError):
    """The Moderation deployment failed or could not be reached (not a verdict on the content)."""


class ModerationClient(Protocol):
    """What the gateway calls."""

    async def check_inputs(
        self, texts: Sequence[str], policy: str | None = None, *, request_id: str | None = None, team: str | None = None
    ) -> list[Verdict]:
        """Input rails on the texts of one request."""
        ...

    async def check_output(
        self, text: str, policy: str | None = None, *, request_id: str | None = None, team: str | None = None,
        context: str | None = None, window: bool = False,
    ) -> Verdict:
        """Output rails on a whole output, or on a stream window (``window=True``)."""
        ...

    def stream_guard(
        self, policy: str | None = None, *, request_id: str | None = None, team: str | None = None,
        context: str | None = None,
    ) -> StreamGuard:
        """A guard for one output stream (one per choice)."""
        ...


class RayModerationClient:
    """Calls the Moderation deployment through a deployment handle.

    Args:
        handle: Handle of the Moderation deployment.
        policies: ``PolicyInfo`` by name (``load_policies(...).infos()`` in the gateway, validated at its
            startup), for stream settings, versions and system prompts without a round trip.
        default_policy: Name used when a request's team has no policy set.
    """

    def __init__(self, handle: Any, policies: Mapping[str, PolicyInfo], default_policy: str) -> None:
        self._handle = handle
        self._policies = dict(policies)
        self.default_policy = default_policy

    def info(self, policy: str | None) -> PolicyInfo:
        """The policy's name, version, system prompt and stream settings.

        Raises:
            UnknownPolicyError: no policy has that name.
        """
        name = policy or self.default_policy
        if name not in self._policies:
            raise UnknownPolicyError(name)
        return self._policies[name]

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return await getattr(self._handle, method).remote(*args, **kwargs)
        except Exception as exc:  # RayTaskError, BackPressureError, DeploymentUnavailableError ...
            logger.warning("moderation call %s failed", method, exc_info=True)
            raise ModerationUnavailableError(f"moderation {method} failed") from exc

    async def check_inputs(
        self, texts: Sequence[str], policy: str | None = None, *, request_id: str | None = None, team: str | None = None
    ) -> list[Verdict]:
        """Input rails on the texts of one request, in one round trip."""
        name = self.info(policy).name
        return await self._call("check_inputs", list(texts), name, request_id, team)

    async def check_output(
        self, text: str, policy: str | None = None, *, request_id: str | None = None, team: str | None = None,
        context: str | None = None, window: bool = False,
    ) -> Verdict:
        """Output rails on a whole output, or on one stream window (``window=True``)."""
        return await self._call("check_output", text, self.info(policy).name, request_id, team, context, window)

    async def moderate(
        self, texts: Sequence[str], policy: str | None = None, *, request_id: str | None = None, team: str | None = None
    ) -> ModerationResponse:
        """The Moderations API response for ``texts``."""
        return await self._call("moderate", list(texts), self.info(policy).name, request_id, team)

    def stream_guard(
        self, policy: str | None = None, *, request_id: str | None = None, team: str | None = None,
        context: str | None = None,
    ) -> StreamGuard:
        """A guard whose window checks go to the deployment (one per choice of a stream)."""
        info = self.info(policy)

        async def check(window: str) -> Verdict:
            return await self.check_output(
                window, info.name, request_id=request_id, team=team, context=context, window=True
            )

        return StreamGuard(check, info.stream)
