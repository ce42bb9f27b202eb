"""The Moderation Ray Serve deployment: a :class:`~guardrails.moderator.Moderator` behind a handle.

It knows nothing of HTTP: the gateway calls its methods through a deployment handle and turns
verdicts into responses. The app builder (``serve/app.py``) injects what it needs from the
platform (the moderation config, how to reach the engine, the tokenizer, the metrics), so this
package imports nothing from ``serve`` but the engine interface (``serve.engine.api``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from ray import serve

from serve.engine.api import EngineClient

from .audit import AuditLog
from .metrics import CountingMetrics, ModerationMetrics
from .moderator import Moderator
from .policy import PolicyError, PolicyInfo, load_policies
from .provider import register_engine_provider
from .verdict import Verdict

logger = logging.getLogger(__name__)


class ModerationSettings(Protocol):
    """What the deployment reads of its config (``serve.config.ModerationConfig`` in the platform)."""

    policies_dir: Path | None
    default_policy: str
    audit_include_text: bool


@serve.deployment(name="Moderation")
class ModerationDeployment:
    """Runs input and output rails; loads and validates every policy when the replica starts.

    Args:
        config: The moderation section of the deployment config.
        engine_handle: Handle of the Engine deployment, for model-based rails (self-checks).
        engine_client: Wraps ``engine_handle`` into an :class:`~serve.engine.api.EngineClient`
            (``serve.engine.client.RayEngineClient`` in the platform); needed with model rails.
        tokenizer: Loads the served model's tokenizer (it renders the self-check prompts); needed
            with model rails.
        max_model_len: Context limit of the engine; longer self-check prompts fail the rail.
        metrics: Creates the metrics this replica records into (the platform's Ray metrics; default:
            in memory).
        setup_logging: Called first, in the replica (the platform sends this package's logs to
            Ray Serve's structured log handlers).

    Raises:
        PolicyError: a policy is invalid, or uses model rails without an engine to call.
    """

    def __init__(
        self,
        config: ModerationSettings,
        engine_handle: Any = None,
        engine_client: Callable[[Any], EngineClient] | None = None,
        tokenizer: Callable[[], Any] | None = None,
        max_model_len: int | None = None,
        metrics: Callable[[], ModerationMetrics] | None = None,
        setup_logging: Callable[[], Any] | None = None,
    ) -> None:
        if setup_logging is not None:
            setup_logging()
        policies = load_policies(config.policies_dir, config.default_policy)
        model_policies = [p.name for p in policies if p.needs_llm]
        if model_policies:
            if engine_handle is None or engine_client is None or tokenizer is None:
                raise PolicyError(
                    f"policies {model_policies} use model rails, but the Moderation deployment was given no "
                    "Engine handle, engine client and tokenizer to call the served model with"
                )
            register_engine_provider(engine_client(engine_handle), tokenizer(), max_model_len=max_model_len)
        self._moderator = Moderator(
            policies, metrics=metrics() if metrics else CountingMetrics(),
            audit=AuditLog(include_text=config.audit_include_text),
        )
        logger.info("moderation policies loaded: %s", {p.name: p.version for p in policies})

    async def check_input(
        self, text: str, policy: str | None = None, request_id: str | None = None, team: str | None = None
    ) -> Verdict:
        """Input rails of ``policy`` (default policy for None) on one text."""
        return await self._moderator.check_input(text, policy, request_id=request_id, team=team)

    async def check_inputs(
        self, texts: list[str], policy: str | None = None, request_id: str | None = None, team: str | None = None
    ) -> list[Verdict]:
        """Input rails on several texts (one round trip for all messages of a request)."""
        return await self._moderator.check_inputs(texts, policy, request_id=request_id, team=team)

    async def check_output(
        self,
        text: str,
        policy: str | None = None,
        request_id: str | None = None,
        team: str | None = None,
        context: str | None = None,
        window: bool = False,
    ) -> Verdict:
        """Output rails on a whole output, or one stream window (``window=True``); ``context``: the user turn."""
        return await self._moderator.check_output(
            text, policy, request_id=request_id, team=team, context=context, window=window
        )

    def policies(self) -> dict[str, PolicyInfo]:
        """Name, version, system prompt and stream settings of every loaded policy."""
        return self._moderator.policies.infos()
