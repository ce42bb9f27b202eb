"""Redis stopped mid-run: requests keep succeeding; the cache comes back with Redis.

A second application (a gateway only, sharing the main app's Engine) talks to a Redis server
this test owns, so it can stop and restart it without disturbing the rest of the suite.
"""

from __future__ import annotations

import time

import openai
import pytest

from serve.config import load_config, packaged_config_path
from serve.gateway.deployment import GatewayDeployment
from serve.local_stack import EmbeddedRedis

APP = "redis-outage"
PROMPT = [{"role": "user", "content": "survive the outage"}]


@pytest.fixture(scope="module")
def outage(served, tiny_model_dir, tmp_path_factory, create_key_in):
    from ray import serve

    redis_server = EmbeddedRedis(tmp_path_factory.mktemp("outage-redis")).start()
    config = load_config(packaged_config_path("local"))
    config.cache.ttl_s = 2  # short, so that expiry is observable here
    engine = serve.get_deployment_handle("Engine", app_name=served.app_name)
    gateway = GatewayDeployment.options(num_replicas=1, ray_actor_options={"num_cpus": 0.1}).bind(
        engine, str(tiny_model_dir), config, redis_url=redis_server.url
    )
    serve.run(gateway, name=APP, route_prefix=f"/{APP}")
    client = openai.OpenAI(base_url=f"{served.root_url}/{APP}/v1", api_key=create_key_in(redis_server.url, "outage", rpm=0, tpm=0),
                           max_retries=0, timeout=60)
    yield redis_server, client, served.model
    serve.delete(APP)
    redis_server.stop()


def ask(client, model) -> tuple[str, str]:
    raw = client.chat.completions.with_raw_response.create(model=model, messages=PROMPT, max_tokens=6, temperature=0)
    return raw.headers["x-cache"], raw.parse().choices[0].message.content


def test_cache_entries_expire_after_their_ttl(outage):
    _, client, model = outage
    first = ask(client, model)
    assert ask(client, model) == ("hit", first[1])
    time.sleep(2.5)
    assert ask(client, model)[0] == "miss"


def test_requests_survive_redis_stopping_and_the_cache_returns(outage):
    # The team is unmetered: a metered team's requests get 503 quota_unavailable while Redis is
    # away (quotas fail closed; tests/security/test_redis_outage_policy.py).
    redis_server, client, model = outage
    ask(client, model)
    assert ask(client, model)[0] == "hit"
    redis_server.stop()
    during = [ask(client, model) for _ in range(3)]
    assert [status for status, _ in during] == ["bypass"] * 3  # answered by the engine, not the cache
    assert len({text for _, text in during}) == 1
    redis_server.start()  # same port, same data directory
    time.sleep(1.1)  # the gateway retries Redis one second after a failure
    statuses = [ask(client, model)[0] for _ in range(2)]
    assert statuses in (["hit", "hit"], ["miss", "hit"])  # the entry may have expired meanwhile
