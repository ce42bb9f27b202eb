"""templates/redis-service.yaml: the bundled Redis's Service (and the cache Redis's)."""

from __future__ import annotations

from .conftest import FULLNAME, find, one, render


def test_selects_the_redis_pod_on_6379():
    docs = render("default", "redis.cache.enabled=true")
    for name in ("redis", "redis-cache"):
        service = one(docs, "Service", f"{FULLNAME}-{name}")
        pod_labels = one(docs, "StatefulSet", f"{FULLNAME}-{name}")["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod_labels.items()
        assert service["spec"]["ports"] == [{"name": "redis", "port": 6379, "targetPort": "redis"}]
    assert not find(render(), "Service", f"{FULLNAME}-redis-cache")


def test_absent_with_external_redis():
    assert not find(render("full"), "Service")
