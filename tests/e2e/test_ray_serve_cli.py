"""The same deployment config works through Ray's own `serve run` (import path and config file)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import httpx
import pytest
import yaml

from serve.config import load_config, packaged_config_path
from serve.serve_config import ray_serve_config


def small_config(name: str):
    # Shares the test cluster with the main app: reserve little CPU (Ray's logical units).
    config = load_config(packaged_config_path("local"))
    config.name = name
    config.engine.deployment.num_cpus = 0.25
    config.engine.torch_threads = 1
    config.gateway.deployment.num_cpus = 0.1
    return config


def serve_run(args: list[str], tiny_model_dir) -> None:
    import ray

    env = dict(os.environ, RAY_ADDRESS=ray.get_runtime_context().gcs_address,
               MISTRAL_SERVE_TINY_MODEL_DIR=str(tiny_model_dir))
    serve_cli = shutil.which("serve", path=os.path.dirname(sys.executable))
    subprocess.run([serve_cli, "run", "--non-blocking", *args], env=env, check=True, timeout=300,
                   stdout=subprocess.DEVNULL)


def wait_ready(url: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=10).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    pytest.fail(f"{url} never became ready")


def ask(base_url: str, model: str, api_key: str) -> str:
    from openai import OpenAI

    client = OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=60)
    response = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=4, temperature=0
    )
    return response.choices[0].finish_reason


@pytest.mark.parametrize("form", ["import-path", "config-file"])
def test_serve_run_deploys_the_app(served, tiny_model_dir, tmp_path, form):
    from ray import serve

    name = f"via-{form}"
    config = small_config(name)
    if form == "import-path":
        path = tmp_path / "deployment.yaml"
        path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
        serve_run(["--name", name, "--route-prefix", f"/{name}", "serve.app:build_app", f"config={path}"], tiny_model_dir)
    else:
        ray_config = ray_serve_config(config)
        ray_config["applications"][0]["route_prefix"] = f"/{name}"
        path = tmp_path / "ray-serve.yaml"
        path.write_text(yaml.safe_dump(ray_config))
        serve_run([str(path)], tiny_model_dir)
    try:
        wait_ready(f"{served.root_url}/{name}/readyz")
        assert ask(f"{served.root_url}/{name}/v1", config.model.served_name, served.api_key) == "length"
    finally:
        serve.delete(name)
