"""How the gateway reaches moderation: one Protocol, and its Ray Serve handle implementation.

:class:`~guardrails.moderator.Moderator` satisfies the same Protocol in-process, so the pipeline can be
tested (and offline-only setups run) without Ray. Ray's exceptions become
:class:`ModerationUnavailableError` here, which the gateway maps to its own typed error.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from .verdict import Verdict

logger = logging.getLogger(__name__)


class ModerationUnavailableError(RuntimeError):
    """The Moderation deployment failed or could not be reached (not a verdict on the content)."""


class ModerationClient(Protocol):
    """Everything the gateway calls on the moderation layer: verdicts, nothing else.

    Implemented by :class:`RayModerationClient` (the Moderation deployment's handle) and, in-process,
    by :class:`~guardrails.moderator.Moderator`. Stream guards are built on ``check_output`` with
    :func:`guardrails.stream.stream_guard`.
    """

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


class RayModerationClient:
    """Calls the Moderation deployment through a deployment handle.

    Ray's exceptions become :class:`ModerationUnavailableError`; the policy names it is given were
    resolved by the caller (the gateway knows the policies the deployment loaded).

    Args:
        handle: Handle of the Moderation deployment.
    """

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    async def _call(self, method: str, *args: Any) -> Any:
        try:
            return await getattr(self._handle, method).remote(*args)
        except Exception as exc:  # RayTaskError, BackPressureError, DeploymentUnavailableError ...
            logger.warning("moderation call %s failed", method, exc_info=True)
            raise ModerationUnavailableError(f"moderation {method} failed") from exc

    async def check_inputs(
        self, texts: Sequence[str], policy: str | None = None, *, request_id: str | None = None, team: str | None = None
    ) -> list[Verdict]:
        """Input rails on the texts of one request, in one round trip."""
        return await self._call("check_inputs", list(texts), policy, request_id, team)

    async def check_output(
        self, text: str, policy: str | None = None, *, request_id: str | None = None, team: str | None = None,
        context: str | None = None, window: bool = False,
    ) -> Verdict:
        """Output rails on a whole output, or on one stream window (``window=True``)."""
        return await self._call("check_output", text, policy, request_id, team, context, window)
