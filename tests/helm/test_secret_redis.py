"""templates/secret-redis.yaml: the bundled Redis password, or the external Redis URL."""

from __future__ import annotations

import base64

from .conftest import FULLNAME, find, one, render


def test_bundled_redis_gets_a_generated_url_safe_password():
    secret = one(render(), "Secret", f"{FULLNAME}-redis")
    password = base64.b64decode(secret["data"]["password"]).decode()
    assert password.isalnum() and len(password) == 40  # embedded in a redis:// URL
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_an_existing_password_secret_replaces_it():
    assert not find(render("fixed"), "Secret", f"{FULLNAME}-redis")


def test_external_redis_url_is_stored_in_a_secret():
    docs = render("full")
    assert not find(docs, "Secret", f"{FULLNAME}-redis")
    secret = one(docs, "Secret", f"{FULLNAME}-redis-url")
    assert base64.b64decode(secret["data"]["url"]).decode() == "rediss://:secret@redis.example.com:6380/0"


def test_an_existing_url_secret_replaces_it():
    docs = render("full", "redis.external.url=", "redis.external.existingSecret=platform-redis")
    assert not find(docs, "Secret", f"{FULLNAME}-redis-url")


def test_the_cache_redis_gets_its_own_kept_password():
    assert not find(render(), "Secret", f"{FULLNAME}-redis-cache")
    secret = one(render("default", "redis.cache.enabled=true"), "Secret", f"{FULLNAME}-redis-cache")
    assert base64.b64decode(secret["data"]["password"]).decode().isalnum()
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_the_gateway_gets_the_cache_url():
    from .conftest import ray_pods

    pods = ray_pods(render("default", "redis.cache.enabled=true"))
    env = {e["name"]: e for e in pods["cpu"]["spec"]["containers"][0]["env"]}
    assert env["MISTRAL_SERVE_CACHE_REDIS_URL"]["value"] == (
        f"redis://:$(MISTRAL_SERVE_CACHE_REDIS_PASSWORD)@{FULLNAME}-redis-cache.serving.svc:6379/0")
    assert env["MISTRAL_SERVE_CACHE_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == f"{FULLNAME}-redis-cache"
