"""Builds the Ray Serve application from a deployment config.

Ray's own tooling uses the import path ``serve.app:build_app``::

    serve run serve.app:build_app config=serve/configs/local.yaml
"""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from .config import AppConfig, load_config
from .engine.deployment import EngineDeployment
from .engine.loader import check_model_available, resolve_model_source
from .gateway.deployment import GatewayDeployment
from .settings import Settings


def build_application(config: AppConfig, settings: Settings | None = None) -> Application:
    """Binds the Gateway and Engine deployments described by ``config``.

    Fails fast, before any replica starts, when the model cannot be found (see
    :func:`serve.engine.loader.check_model_available`).
    """
    settings = settings or Settings()
    source = resolve_model_source(config.model, settings.tiny_model_dir)
    check_model_available(source, config.model.revision)
    engine = EngineDeployment.options(
        **config.engine.deployment.serve_options(config.engine.default_max_ongoing())
    ).bind(source, config.model.revision, config.engine)
    return GatewayDeployment.options(
        **config.gateway.deployment.serve_options(config.gateway.default_max_ongoing())
    ).bind(engine, source, config)


def build_app(args: dict[str, Any]) -> Application:
    """Ray Serve application builder.

    Args:
        args: Either ``{"config": "path/to/deployment.yaml"}`` or the deployment config itself
            (as the Helm chart renders it into ``serveConfigV2``).
    """
    config = load_config(args["config"]) if set(args) == {"config"} else AppConfig.model_validate(args)
    return build_application(config)
