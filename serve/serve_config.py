"""The Ray Serve config file of a deployment: a library function the CLI (``mistral-serve
ray-config``), the cluster tools (``ops/cluster``) and the chart's tests share.

Ray hashes an application's ``import_path``, ``runtime_env`` and ``args`` into its code version:
changing any of them replaces every replica (and reloads the model's weights). Options in
``deployments[]`` (replica counts, autoscaling bounds, concurrency, queue bounds, resources,
drain and health check) and the application's ``logging_config`` are applied in place instead:
replicas are added or removed, the running ones stay. So the deployment config is split: the
``deployment`` sections and the Serve logging settings go to ``deployments[]`` and
``logging_config``, everything else (the application's own settings) to ``args``.
"""

from __future__ import annotations

from typing import Any

from .config import AppConfig, EngineConfig, GatewayConfig, ModerationConfig

# Ray Serve deployment names (the @serve.deployment(name=...) of each class).
GATEWAY, ENGINE, MODERATION = "Gateway", "Engine", "Moderation"
SECTION_OF = {GATEWAY: "gateway", ENGINE: "engine", MODERATION: "moderation"}

# What ``args`` leaves out: it travels in ``deployments[]`` / ``logging_config`` / http_options.
NOT_IN_ARGS: dict[str, Any] = {
    "http": True,
    "engine": {"deployment"},
    "gateway": {"deployment"},
    "moderation": {"deployment"},
    "logging": {"encoding", "level", "access_log"},
}


def application_args(config: AppConfig) -> dict[str, Any]:
    """The application's ``args``: its settings without the in-place updatable options."""
    return config.model_dump(mode="json", exclude=NOT_IN_ARGS)


def deployment_options(config: AppConfig) -> list[dict[str, Any]]:
    """``deployments[]``: Ray Serve's options of each deployment, named as Ray knows it."""
    sections: list[tuple[str, GatewayConfig | EngineConfig | ModerationConfig]] = [
        (GATEWAY, config.gateway), (ENGINE, config.engine)]
    if config.moderation.enabled:
        sections.append((MODERATION, config.moderation))
    return [
        {"name": name, **section.deployment.serve_options(section.default_max_ongoing())}
        for name, section in sections
    ]


def ray_serve_config(config: AppConfig) -> dict:
    """A Ray Serve config file (for ``serve run FILE`` / ``serve deploy FILE``) for ``config``.

    The deployment config travels inline, so the cluster needs no copy of the YAML file: the
    same shape the Helm chart renders into ``serveConfigV2``.
    """
    return {
        "http_options": {"host": config.http.host, "port": config.http.port},
        "applications": [
            {
                "name": config.name,
                "route_prefix": "/",
                "import_path": "serve.app:build_app",
                "args": application_args(config),
                "logging_config": config.logging.serve_logging_config(),
                "deployments": deployment_options(config),
            }
        ],
    }
