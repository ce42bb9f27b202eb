"""A real replica's log file: one JSON access record per request, with the request id the client
got in ``x-request-id``, and no prompt or completion text (Ray Serve's ``logging_config``)."""

from __future__ import annotations

import json
import time

import httpx

from serve.config import load_config, packaged_config_path
from serve.settings import Settings

SECRET = "the launch code is tangerine-42"


def _lines(logs_dir) -> list[dict]:
    return [json.loads(line) for path in logs_dir.rglob("*.log")
            for line in path.read_text().splitlines() if line.startswith("{")]


def access_records(logs_dir, request_id: str, timeout_s: float = 60) -> list[dict]:
    """The access records of ``request_id`` in the replicas' JSON log files (waits for the write)."""
    deadline = time.monotonic() + timeout_s
    while True:
        lines = _lines(logs_dir)
        found = [r for r in lines if r.get("event") == "access" and r.get("request_id") == request_id]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def test_each_request_leaves_one_json_access_record_without_text(served, tiny_model_dir, tmp_path):
    from ray import serve

    from serve.app import build_application

    name = "logged"
    config = load_config(packaged_config_path("local"))
    config.name = name
    # Shares the test cluster with the main app: reserve little CPU (Ray's logical units).
    config.engine.deployment.num_cpus, config.engine.torch_threads = 0.25, 1
    config.gateway.deployment.num_cpus = config.moderation.deployment.num_cpus = 0.1
    logging_config = {**config.logging.serve_logging_config(), "logs_dir": str(tmp_path)}
    serve.run(build_application(config, Settings(tiny_model_dir=tiny_model_dir)), name=name,
              route_prefix=f"/{name}", logging_config=logging_config)
    try:
        url = f"{served.root_url}/{name}/v1/chat/completions"
        headers = {"Authorization": f"Bearer {served.api_key}", "Cache-Control": "no-cache"}
        body = {"model": config.model.served_name, "messages": [{"role": "user", "content": SECRET}],
                "max_tokens": 4, "temperature": 0}
        response = httpx.post(url, headers=headers, json=body, timeout=120)
        assert response.status_code == 200, response.text
        request_id = response.headers["x-request-id"]
        records = access_records(tmp_path, request_id)
        assert len(records) == 1, (request_id, sorted(p.name for p in tmp_path.rglob("*")),
                                   [r for r in _lines(tmp_path) if r.get("event") == "access"][:3])
        (record,) = records
        assert (record["path"], record["status"], record["team"]) == ("/v1/chat/completions", 200, "e2e")
        assert record["application"] == name and record["deployment"].endswith("Gateway")  # Ray: APP_Gateway
        assert record["prompt_tokens"] > 0 and record["completion_tokens"] == 4
        assert record["latency_ms"] >= record["ttft_ms"] > 0 and record["levelname"] == "INFO"
        assert record["completion_id"] == response.json()["id"]
        refused = httpx.post(url, headers={"Authorization": "Bearer nope"}, json=body, timeout=60)
        assert refused.status_code == 401
        (denied,) = access_records(tmp_path, refused.headers["x-request-id"])
        assert denied["status"] == 401 and denied["error_code"] == "invalid_api_key"
        text = "".join(p.read_text() for p in tmp_path.rglob("*.log"))
        assert SECRET not in text and served.api_key not in text
    finally:
        serve.delete(name)

