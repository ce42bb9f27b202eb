"""Keys, quotas and usage end to end: official client -> HTTP -> two gateway replicas -> Redis."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time

import httpx
import openai
import pytest

USER = [{"role": "user", "content": "Count the replicas."}]


def client_for(served, key: str, **options):
    return openai.OpenAI(base_url=served.base_url, api_key=key, max_retries=0, timeout=60,
                         default_headers={"Cache-Control": "no-cache"}, **options)


def test_missing_and_wrong_keys_are_401(served):
    response = httpx.post(f"{served.base_url}/chat/completions", json={"model": served.model, "messages": USER})
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        client_for(served, "ms-not-a-real-key").models.list()


def test_revoked_key_stops_working_within_a_second(served, admin_headers):
    admin = admin_headers
    created = httpx.post(f"{served.root_url}/admin/keys", json={"team": "revoke-me"}, headers=admin).json()
    client = client_for(served, created["key"])
    assert client.models.list().data[0].id == served.model
    assert httpx.delete(f"{served.root_url}/admin/keys/{created['key_id']}", headers=admin).status_code == 200
    time.sleep(1.1)  # the replicas' key cache lives one second
    for _ in range(4):  # every gateway replica
        with pytest.raises(openai.AuthenticationError):
            client.models.list()


def test_key_without_access_to_the_model_is_403(served, make_key):
    client = client_for(served, make_key("limited", models=("some-other-model",)))
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.chat.completions.create(model=served.model, messages=USER, max_tokens=1)
    assert caught.value.code == "model_not_allowed"
    assert client.models.list().data == []


def test_admin_endpoints_need_the_admin_token(served, admin_headers):
    assert httpx.get(f"{served.root_url}/admin/keys").status_code == 401
    assert httpx.get(f"{served.root_url}/admin/keys", headers={"Authorization": f"Bearer {served.api_key}"}).status_code == 401
    listing = httpx.get(f"{served.root_url}/admin/keys", headers=admin_headers).json()
    assert all("key" not in k and "sha256" not in k for k in listing["data"])


async def test_requests_per_minute_hold_across_two_gateway_replicas(served, make_key):
    rpm = 5
    client = openai.AsyncOpenAI(base_url=served.base_url, api_key=make_key("rpm-team", rpm=rpm, tpm=0),
                                max_retries=0, timeout=60, default_headers={"Cache-Control": "no-cache"})

    async def attempt():
        try:
            raw = await client.chat.completions.with_raw_response.create(model=served.model, messages=USER, max_tokens=1)
            assert raw.headers["x-ratelimit-limit-requests"] == str(rpm)
            return True
        except openai.RateLimitError as error:
            assert int(error.response.headers["retry-after"]) >= 1
            assert error.code == "rate_limit_exceeded"
            return False

    started = time.monotonic()
    admitted = sum(await asyncio.gather(*[attempt() for _ in range(16)]))
    refilled = int((time.monotonic() - started) * rpm / 60)
    assert rpm <= admitted <= rpm + refilled


def test_tokens_per_minute_count_prompt_and_max_tokens(served, make_key):
    client = client_for(served, make_key("tpm-team", rpm=0, tpm=60))
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=served.model, messages=USER, max_tokens=100)
    assert caught.value.code == "request_too_large"
    client.chat.completions.create(model=served.model, messages=USER, max_tokens=30)
    # The first request took its prompt (~15) plus what it generated; 30 more no longer fit.
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model=served.model, messages=USER, max_tokens=30)
    assert caught.value.body["type"] == "tokens"


def test_usage_is_recorded_and_reported_by_admin_api_and_cli(served, make_key, admin_headers):
    key = make_key("usage-e2e")
    client = client_for(served, key)
    results = [client.chat.completions.create(model=served.model, messages=USER, max_tokens=3) for _ in range(3)]
    expected_prompt = sum(r.usage.prompt_tokens for r in results)
    expected_completion = sum(r.usage.completion_tokens for r in results)
    admin = admin_headers
    row = None
    for _ in range(20):  # usage is written just after each response
        row = httpx.get(f"{served.root_url}/admin/usage", params={"team": "usage-e2e"}, headers=admin).json()["data"][0]
        if row["requests"] == 3:
            break
        time.sleep(0.1)
    assert (row["requests"], row["prompt_tokens"], row["completion_tokens"]) == (3, expected_prompt, expected_completion)
    cli = shutil.which("mistral-serve", path=os.path.dirname(sys.executable))
    env = dict(os.environ, MISTRAL_SERVE_REDIS_URL=served.redis_url)
    out = subprocess.run([cli, "usage", "--team", "usage-e2e", "--json"], env=env, check=True,
                         capture_output=True, text=True, timeout=60).stdout
    assert json.loads(out)[0]["total_tokens"] == expected_prompt + expected_completion


def test_keys_cli_create_list_revoke(served):
    cli = shutil.which("mistral-serve", path=os.path.dirname(sys.executable))
    env = dict(os.environ, MISTRAL_SERVE_REDIS_URL=served.redis_url)

    def run(*args: str) -> str:
        return subprocess.run([cli, "keys", *args], env=env, check=True, capture_output=True, text=True,
                              timeout=60).stdout

    created = run("create", "--team", "cli-team", "--rpm", "100")
    key = created.strip().splitlines()[-1]
    key_id = key.split("-")[1]
    assert client_for(served, key).models.list().data
    assert key_id in run("list", "--team", "cli-team") and key not in run("list")
    assert "revoked" in run("revoke", key_id)
    time.sleep(1.1)
    with pytest.raises(openai.AuthenticationError):
        client_for(served, key).models.list()
