"""The Ray Serve config file of a deployment: a library function the CLI (``mistral-serve
ray-config``), the cluster tools (``ops/cluster``) and the chart's tests share."""

from __future__ import annotations

from .config import AppConfig


def ray_serve_config(config: AppConfig) -> dict:
    """A Ray Serve config file (for ``serve run FILE`` / ``serve deploy FILE``) embedding ``config``.

    The deployment config travels inline in the application's ``args``, so the cluster needs no
    copy of the YAML file: the same shape the Helm chart renders into ``serveConfigV2``.
    """
    return {
        "http_options": {"host": config.http.host, "port": config.http.port},
        "applications": [
            {
                "name": config.name,
                "route_prefix": "/",
                "import_path": "serve.app:build_app",
                "args": config.model_dump(mode="json", exclude={"http"}),
            }
        ],
    }
