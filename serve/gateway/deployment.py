"""The Gateway Ray Serve deployment: the FastAPI ingress in front of the engine."""

from __future__ import annotations

import time

from fastapi import FastAPI
from ray import serve

from guardrails.audit import AuditLog
from guardrails.client import RayModerationClient

from ..cache import PromptCache
from ..config import AppConfig
from ..engine.client import RayEngineClient
from ..engine.loader import context_length, load_model_config
from ..logs import use_serve_log_handlers
from ..prompts.loader import load_prompt_encoder
from ..redis_gate import RedisGate
from ..settings import Settings
from ..tenancy.auth import Authenticator
from ..tenancy.keys import KeyStore
from ..tenancy.outbox import AccountingOutbox
from ..tenancy.quotas import QuotaManager
from ..tenancy.usage import UsageRecorder
from ..tracing import build_tracing
from .adapter import EngineAdapter
from .admin import create_admin_router
from .drain import DrainReporter, DrainState
from .moderation_stage import ModerationStage
from .pipeline import Pipeline, Tenancy
from .readiness import ReadinessCache
from .routes import create_app


class RedisNotConfigured(RuntimeError):
    """The gateway needs Redis for keys and quotas."""


@serve.deployment(name="Gateway")
@serve.ingress()
class GatewayDeployment:
    """Authenticates, validates and tokenizes requests on CPU, then streams from the Engine.

    Args:
        engine_handle: Handle of the Engine deployment.
        source: ``from_pretrained`` argument of the served model (for its tokenizer and config).
        config: The deployment config.
        redis_url: Overrides ``MISTRAL_SERVE_REDIS_URL`` (read in the replica, so the URL and its
            password need not travel through Ray's deployment config).
        moderation: Handle of the Moderation deployment (None: moderation disabled).
        policies: The moderation policies' names, versions, system prompts and stream settings.
    """

    def __init__(self, engine_handle, source: str, config: AppConfig, redis_url: str | None = None,
                 moderation=None, policies: dict | None = None) -> None:
        settings = Settings()
        redis_url = redis_url or settings.redis_url
        if not redis_url:
            raise RedisNotConfigured("set MISTRAL_SERVE_REDIS_URL: API keys and quotas live in Redis")
        encoder = load_prompt_encoder(source, config.model.revision, config.model.prompt_format)
        max_model_len = context_length(load_model_config(source, config.model.revision), config.engine.max_model_len)
        self._gate = RedisGate(redis_url, timeout_s=config.tenancy.redis_timeout_s)
        # The cache may have a Redis of its own (one that may evict); accounting never shares eviction.
        cache_gate = (RedisGate(settings.cache_redis_url, timeout_s=config.tenancy.redis_timeout_s)
                      if settings.cache_redis_url else self._gate)
        outbox = AccountingOutbox(self._gate, max_pending=config.tenancy.accounting_buffer_max)
        tenancy = Tenancy(
            auth=Authenticator(KeyStore(self._gate.client), self._gate, config.tenancy),
            quotas=QuotaManager(self._gate, config.tenancy, outbox),
            usage=UsageRecorder(self._gate, outbox),
            cache=PromptCache(cache_gate, config.cache) if config.cache.enabled else None,
        )
        stage = None
        if moderation is not None and policies:
            default = config.moderation.default_policy
            stage = ModerationStage(
                RayModerationClient(moderation), policies, default,
                AuditLog(include_text=config.moderation.audit_include_text),
            )
        self._pipeline = Pipeline(
            EngineAdapter(encoder, max_model_len, config.gateway.max_choices),
            RayEngineClient(engine_handle, config.gateway.engine_first_output_timeout_s),
            config.model.served_name,
            model_fingerprint=f"{source}@{config.model.revision or 'default'}",
            tenancy=tenancy,
            moderation=stage,
            tracing=build_tracing(config.tracing),
        )
        self._log_text = config.logging.include_text
        use_serve_log_handlers()
        self._admin_token = settings.admin_token
        self._policy_names = sorted(policies or {}) if stage is not None else None
        self._gateway_config = config.gateway
        context = serve.get_replica_context()
        self._drain = DrainReporter(context.app_name, context.replica_tag, DrainState())
        self._started_at = int(time.time())

    def __serve_build_asgi_app__(self) -> FastAPI:
        """Called by Ray Serve after ``__init__``: the app is built from this replica's state."""
        admin = create_admin_router(self._gate, self._admin_token, self._policy_names) if self._admin_token else None
        gateway = self._gateway_config
        readiness = ReadinessCache(self._pipeline.engine.ready, ttl_s=gateway.readiness_cache_s)
        return create_app(self._pipeline, self._started_at, admin, self._drain, log_text=self._log_text,
                          docs_enabled=gateway.docs_enabled, max_request_bytes=gateway.max_request_bytes,
                          readiness=readiness)
