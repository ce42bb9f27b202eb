"""Redis unreachable: the platform's decisions, seen through the API (docs/security.md).

A gateway of its own (sharing the stack's Engine) talks to a Redis this test owns, so it can stop
and restart it. While Redis is down: a known key keeps working within the stale window, an unknown
key gets 503, a metered team gets 503 quota_unavailable (fail closed), an unmetered team is served
and its usage is buffered; after Redis comes back, usage equals exactly what was served.
"""

from __future__ import annotations

import time

import httpx
import pytest

from serve.config import load_config, packaged_config_path
from serve.local_stack import EmbeddedRedis

from .conftest import assert_envelope

APP = "sec-redis-outage"


@pytest.fixture(scope="module")
def outage(stack, tiny_model_dir, tmp_path_factory):
    from ray import serve

    from serve.gateway.deployment import GatewayDeployment

    data_dir = tmp_path_factory.mktemp("sec-outage-redis")
    server = EmbeddedRedis(data_dir).start()
    config = load_config(packaged_config_path("local"))
    config.moderation.enabled = False
    engine = serve.get_deployment_handle("Engine", app_name=stack.app_name)
    gateway = GatewayDeployment.options(num_replicas=1, ray_actor_options={"num_cpus": 0.1}).bind(
        engine, str(tiny_model_dir), config, redis_url=server.url
    )
    serve.run(gateway, name=APP, route_prefix=f"/{APP}")
    state = {"server": server, "data_dir": data_dir}
    yield state
    serve.delete(APP)
    state["server"].stop()


def ask(stack, key: str) -> httpx.Response:
    body = {"model": stack.model, "messages": [{"role": "user", "content": "outage"}], "max_tokens": 3}
    return httpx.post(f"{stack.root_url}/{APP}/v1/chat/completions", json=body, headers=stack.auth(key), timeout=120)


def test_outage_decisions_and_exact_usage_after_redis_returns(stack, outage):
    from ops.cluster.stack import create_api_key

    server: EmbeddedRedis = outage["server"]
    free = create_api_key(server.url, "out-free", rpm=0, tpm=0)
    metered = create_api_key(server.url, "out-metered", rpm=100, tpm=0)
    served = []
    for key in (free, metered):
        response = ask(stack, key)
        assert response.status_code == 200, response.text
        served.append(response.json()["usage"]) if key == free else None
    server.stop()
    # Within tenancy.stale_auth_max_s (30 s) of their last lookup, known keys still authenticate.
    for _ in range(3):
        response = ask(stack, free)
        assert response.status_code == 200, response.text  # unmetered: no quota to check
        served.append(response.json()["usage"])
    assert_envelope(ask(stack, metered), 503, code="quota_unavailable")  # fail closed
    assert_envelope(ask(stack, "ms-never-seen-key"), 503, code="auth_unavailable")
    # Same port, password and data: Redis comes back; the buffered usage must land, once each.
    outage["server"] = EmbeddedRedis(outage["data_dir"], port=server.port, password=server.password).start()
    import redis

    client = redis.Redis.from_url(outage["server"].url, decode_responses=True)
    day = time.strftime("%Y-%m-%d", time.gmtime())
    expected = {"requests": str(len(served)), "prompt_tokens": str(sum(u["prompt_tokens"] for u in served)),
                "completion_tokens": str(sum(u["completion_tokens"] for u in served))}
    deadline = time.monotonic() + 120
    while client.hget(f"ms:usage:team:out-free:{day}", "requests") != expected["requests"]:
        assert time.monotonic() < deadline, client.hgetall(f"ms:usage:team:out-free:{day}")
        time.sleep(0.2)
    row = client.hgetall(f"ms:usage:team:out-free:{day}")
    assert {k: row[k] for k in expected} == expected
