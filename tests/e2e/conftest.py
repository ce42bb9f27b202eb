"""A real Ray Serve application with the tiny checkpoint, served over real HTTP."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from serve.config import load_config, packaged_config_path
from serve.settings import Settings


@dataclass(frozen=True)
class Served:
    """Where the test application answers."""

    base_url: str  # e.g. http://127.0.0.1:PORT/v1
    root_url: str
    model: str
    app_name: str


def free_port() -> int:
    """A TCP port that is free on the loopback interface right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def served(tiny_model_dir: Path):
    """Starts local Ray, deploys the local config on the tiny checkpoint, yields its URLs."""
    import ray
    from ray import serve

    from serve.app import build_application

    config = load_config(packaged_config_path("local"))
    port = free_port()
    ray.init(include_dashboard=False, num_cpus=2, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    app = build_application(config, Settings(tiny_model_dir=tiny_model_dir))
    serve.run(app, name=config.name, route_prefix="/")
    root = f"http://127.0.0.1:{port}"
    assert httpx.get(f"{root}/readyz", timeout=60).status_code == 200
    yield Served(base_url=f"{root}/v1", root_url=root, model=config.model.served_name, app_name=config.name)
    serve.shutdown()
    ray.shutdown()


@pytest.fixture(scope="session")
def client(served: Served):
    """The official OpenAI client pointed at the test application."""
    from openai import OpenAI

    return OpenAI(base_url=served.base_url, api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def async_client(served: Served):
    """The official async OpenAI client pointed at the test application."""
    from openai import AsyncOpenAI

    return AsyncOpenAI(base_url=served.base_url, api_key="unused", max_retries=0, timeout=120)
