"""The running stack the security tests attack: real Ray Serve, real Redis, real HTTP.

The stack is the e2e suite's (tests/e2e/conftest.py) when that already runs in this session
(one local Ray per process); otherwise it is started here the same way. Each test makes its own
keys, so teams never share limits or usage with another test.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ops.cluster.stack import create_api_key

ADMIN_TOKEN = "test-admin-token"


@dataclass(frozen=True)
class Stack:
    """Where the application answers, and how to reach its state."""

    root_url: str
    base_url: str
    model: str
    app_name: str
    redis_url: str

    def key(self, team: str, **options) -> str:
        """A new API key for ``team`` (options: rpm, tpm, policy, models)."""
        return create_api_key(self.redis_url, team, **options)

    def auth(self, key: str) -> dict[str, str]:
        """Headers of a request made with ``key`` that skips the prompt cache."""
        return {"Authorization": f"Bearer {key}", "Cache-Control": "no-store"}

    def admin(self) -> dict[str, str]:
        """Headers of an /admin request."""
        return {"Authorization": f"Bearer {os.environ.get('MISTRAL_SERVE_ADMIN_TOKEN', ADMIN_TOKEN)}"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _running_stack(redis_url: str) -> Stack | None:
    """The stack another fixture of this session already runs, if any."""
    import ray
    from ray import serve
    from ray.serve.context import _get_global_client

    if not ray.is_initialized():
        return None
    from serve.config import load_config, packaged_config_path

    config = load_config(packaged_config_path("local"))
    if config.name not in serve.status().applications:
        return None
    port = _get_global_client().http_config.port
    root = f"http://127.0.0.1:{port}"
    return Stack(root, f"{root}/v1", config.model.served_name, config.name,
                 os.environ.get("MISTRAL_SERVE_REDIS_URL", redis_url))


@pytest.fixture(scope="session")
def stack(tiny_model_dir: Path, redis_url: str):
    """The application of the local config (two gateway replicas) on local Ray."""
    running = _running_stack(redis_url)
    if running is not None:
        yield running
        return
    import ray
    from ray import serve

    from serve.app import build_application
    from serve.config import load_config, packaged_config_path
    from serve.settings import Settings

    config = load_config(packaged_config_path("local"))
    config.gateway.deployment.num_replicas = 2
    config.gateway.deployment.num_cpus = 0.25
    port = _free_port()
    # NOTE: set before ray.init: every Ray worker inherits them.
    os.environ["MISTRAL_SERVE_REDIS_URL"] = redis_url
    os.environ["MISTRAL_SERVE_ADMIN_TOKEN"] = ADMIN_TOKEN
    ray.init(include_dashboard=False, num_cpus=3, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_application(config, Settings(tiny_model_dir=tiny_model_dir)), name=config.name, route_prefix="/")
    root = f"http://127.0.0.1:{port}"
    assert httpx.get(f"{root}/readyz", timeout=120).status_code == 200
    yield Stack(root, f"{root}/v1", config.model.served_name, config.name, redis_url)
    serve.shutdown()
    ray.shutdown()


def assert_envelope(response: httpx.Response, status: int, param: str | None = None, code: str | None = None) -> dict:
    """The response is OpenAI's error envelope with ``status`` (and ``param``/``code`` when given)."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and isinstance(error["message"], str)
    if param is not None:
        assert error["param"] == param, error
    if code is not None:
        assert error["code"] == code, error
    return error
