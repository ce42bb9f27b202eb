"""Builds the Ray Serve application from a deployment config.

Ray's own tooling uses the import path ``serve.app:build_app``::

    serve run serve.app:build_app config=serve/configs/local.yaml
"""

from __future__ import annotations

import functools
from typing import Any, cast

from ray.serve import Application, Deployment

from .config import AppConfig, ModerationConfig, load_config
from .engine.client import RayEngineClient
from .engine.deployment import EngineDeployment
from .engine.loader import check_model_available, context_length, load_model_config, resolve_model_source
from .gateway.deployment import GatewayDeployment
from .logs import use_serve_log_handlers
from .metrics import moderation_metrics
from .prompts.loader import PromptFormat, load_prompt_encoder
from .settings import Settings


def as_deployment(cls: object) -> Deployment:
    """``cls``, a class decorated with ``@serve.deployment``, as the Deployment it is at run time.

    NOTE: type checkers ignore what a class decorator returns and keep seeing the class.
    """
    return cast(Deployment, cls)


def build_application(config: AppConfig, settings: Settings | None = None) -> Application:
    """Binds the Gateway, Moderation and Engine deployments described by ``config``.

    Fails fast, before any replica starts, when the model cannot be found (see
    :func:`serve.engine.loader.check_model_available`) or a moderation policy is broken
    (:class:`guardrails.policy.PolicyError`).
    """
    settings = settings or Settings()
    source = resolve_model_source(config.model, settings.tiny_model_dir)
    check_model_available(source, config.model.revision)
    engine = as_deployment(EngineDeployment).options(
        **config.engine.deployment.serve_options(config.engine.default_max_ongoing())
    ).bind(source, config.model.revision, config.engine, config.model.quantization)
    moderation = policies = None
    if config.moderation.enabled:
        from guardrails.policy import load_policies

        policies = load_policies(config.moderation.policies_dir, config.moderation.default_policy).infos()
        max_model_len = context_length(load_model_config(source, config.model.revision), config.engine.max_model_len)
        moderation = bind_moderation(
            config.moderation, engine, source, config.model.revision, max_model_len, config.model.prompt_format,
            **config.moderation.deployment.serve_options(config.moderation.default_max_ongoing()),
        )
    return as_deployment(GatewayDeployment).options(
        **config.gateway.deployment.serve_options(config.gateway.default_max_ongoing())
    ).bind(engine, source, config, moderation=moderation, policies=policies)


def bind_moderation(config: ModerationConfig, engine: Any = None, source: str | None = None,
                    revision: str | None = None, max_model_len: int | None = None,
                    prompt_format: PromptFormat = "auto",
                    **options: Any) -> Application:
    """Binds the Moderation deployment with what it needs from the platform, injected here.

    ``guardrails`` imports nothing from ``serve`` but the engine interface: the engine client
    class, the prompt encoder loader (the self-check prompts are encoded like the API's, see
    :class:`serve.engine.api.PromptEncoder`), the metrics factory and the logging setup travel as
    arguments (Ray pickles them by reference and calls them in the replica).

    Args:
        config: The moderation section of the deployment config.
        engine: The Engine deployment (bound application or handle), for model rails.
        source: ``from_pretrained`` argument of the served model (its prompt encoder encodes self-checks).
        revision: Hub revision of the served model.
        max_model_len: Context limit of the engine.
        prompt_format: ``model.prompt_format`` of the config.
        **options: Ray Serve deployment options (replicas, CPUs, ...).
    """
    from guardrails.deployment import ModerationDeployment

    tokenizer = functools.partial(load_prompt_encoder, source, revision, prompt_format) if source is not None else None
    return as_deployment(ModerationDeployment).options(**options).bind(
        config, engine, engine_client=RayEngineClient if engine is not None else None, tokenizer=tokenizer,
        max_model_len=max_model_len, metrics=moderation_metrics, setup_logging=use_serve_log_handlers,
    )


def build_app(args: dict[str, Any]) -> Application:
    """Ray Serve application builder.

    Args:
        args: Either ``{"config": "path/to/deployment.yaml"}`` or the deployment config itself
            (as the Helm chart renders it into ``serveConfigV2``).
    """
    config = load_config(args["config"]) if set(args) == {"config"} else AppConfig.model_validate(args)
    return build_application(config)
