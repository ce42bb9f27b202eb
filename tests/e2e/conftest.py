"""A real Ray Serve application with the tiny checkpoint and real Redis, over real HTTP."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ops.cluster.stack import create_api_key as create_key
from serve.config import load_config, packaged_config_path
from serve.netutil import free_port
from serve.settings import Settings

ADMIN_TOKEN = "test-admin-token"


@dataclass(frozen=True)
class Served:
    """Where the test application answers, and how to get in."""

    base_url: str  # e.g. http://127.0.0.1:PORT/v1
    root_url: str
    model: str
    app_name: str
    redis_url: str
    api_key: str  # team "e2e", default limits


@pytest.fixture(scope="session")
def served(tiny_model_dir: Path, redis_url: str):
    """Starts local Ray, deploys the local config (two gateway replicas), yields its URLs."""
    import ray
    from ray import serve

    from serve.app import build_application

    config = load_config(packaged_config_path("local"))
    # Two gateways prove that quotas and the cache hold across replicas.
    config.gateway.deployment.num_replicas = 2
    config.gateway.deployment.num_cpus = 0.25
    port = free_port()
    # NOTE: set before ray.init: every Ray worker (and `serve run` subprocesses) inherits them.
    os.environ["MISTRAL_SERVE_REDIS_URL"] = redis_url
    os.environ["MISTRAL_SERVE_ADMIN_TOKEN"] = ADMIN_TOKEN
    ray.init(include_dashboard=False, num_cpus=3, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    app = build_application(config, Settings(tiny_model_dir=tiny_model_dir))
    serve.run(app, name=config.name, route_prefix="/")
    root = f"http://127.0.0.1:{port}"
    assert httpx.get(f"{root}/readyz", timeout=60).status_code == 200
    yield Served(base_url=f"{root}/v1", root_url=root, model=config.model.served_name, app_name=config.name,
                 redis_url=redis_url, api_key=create_key(redis_url, "e2e"))
    serve.shutdown()
    ray.shutdown()


@pytest.fixture(scope="session")
def auth(served: Served) -> dict[str, str]:
    """Headers that authenticate as team "e2e" (and skip the prompt cache)."""
    return {"Authorization": f"Bearer {served.api_key}", "Cache-Control": "no-cache"}


@pytest.fixture(scope="session")
def client(served: Served):
    """The official OpenAI client pointed at the test application."""
    from openai import OpenAI

    # no-cache: these tests exercise generation; the prompt cache has its own tests.
    return OpenAI(base_url=served.base_url, api_key=served.api_key, max_retries=0, timeout=120,
                  default_headers={"Cache-Control": "no-cache"})


@pytest.fixture(scope="session")
def async_client(served: Served):
    """The official async OpenAI client pointed at the test application."""
    from openai import AsyncOpenAI

    return AsyncOpenAI(base_url=served.base_url, api_key=served.api_key, max_retries=0, timeout=120,
                       default_headers={"Cache-Control": "no-cache"})


@pytest.fixture(scope="session")
def admin_headers() -> dict[str, str]:
    """Headers that authenticate to the /admin endpoints."""
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="session")
def make_key(served: Served):
    """Creates API keys in the test Redis: ``make_key(team, rpm=..., tpm=..., models=...)``."""
    return lambda team, **options: create_key(served.redis_url, team, **options)


@pytest.fixture(scope="session")
def create_key_in():
    """``create_key_in(redis_url, team, **options)``: a key in any Redis."""
    return create_key
