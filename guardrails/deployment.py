"""The Moderation Ray Serve deployment: a :class:`~guardrails.moderator.Moderator` behind a handle.

It knows nothing of HTTP: the gateway calls its methods through a deployment handle and turns
verdicts into responses. Its own replicas, CPUs and autoscaling come from ``ModerationConfig``.
"""

from __future__ import annotations

import logging

from ray import serve

from serve.config import ModerationConfig
from serve.engine.client import RayEngineClient

from .audit import AuditLog
from .moderations import ModerationResponse, moderation_response
from .moderator import Moderator
from .policy import PolicyError, PolicyInfo, load_policies
from .provider import register_engine_provider
from .verdict import Verdict

logger = logging.getLogger(__name__)


@serve.deployment(name="Moderation")
class ModerationDeployment:
    """Runs input and output rails; loads and validates every policy when the replica starts.

    Args:
        config: The moderation section of the deployment config.
        engine_handle: Handle of the Engine deployment, for model-based rails (self-checks).
        model_source: ``from_pretrained`` argument of the served model (its tokenizer renders the
            self-check prompts); needed with ``engine_handle``.
        model_revision: Hub revision of the served model.
        max_model_len: Context limit of the engine; longer self-check prompts fail the rail.

    Raises:
        PolicyError: a policy is invalid, or uses model rails without an engine to call.
    """

    def __init__(
        self,
        config: ModerationConfig,
        engine_handle=None,
        model_source: str | None = None,
        model_revision: str | None = None,
        max_model_len: int | None = None,
    ) -> None:
        policies = load_policies(config.policies_dir, config.default_policy)
        model_policies = [p.name for p in policies if p.needs_llm]
        if model_policies:
            if engine_handle is None or model_source is None:
                raise PolicyError(
                    f"policies {model_policies} use model rails, but the Moderation deployment was given no "
                    "Engine handle and model source to call the served model with"
                )
            from serve.engine.loader import load_tokenizer

            tokenizer = load_tokenizer(model_source, model_revision)
            register_engine_provider(RayEngineClient(engine_handle), tokenizer, max_model_len=max_model_len)
        self._moderator = Moderator(policies, audit=AuditLog(include_text=config.audit_include_text))
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

    async def moderate(
        self, texts: list[str], policy: str | None = None, request_id: str | None = None, team: str | None = None
    ) -> ModerationResponse:
        """The Moderations API response for ``texts`` (input rails of the policy)."""
        verdicts = await self._moderator.check_inputs(texts, policy, request_id=request_id, team=team)
        return moderation_response(verdicts)

    def policies(self) -> dict[str, PolicyInfo]:
        """Name, version, system prompt and stream settings of every loaded policy."""
        return self._moderator.policies.infos()
