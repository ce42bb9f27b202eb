"""templates/redis-statefulset.yaml (_redis.tpl): the bundled Redis (keys, quotas, usage) and the
optional cache Redis, each with its password in a generated config file."""

from __future__ import annotations

from .conftest import FULLNAME, find, one, render


def statefulset(value_set="default", *sets, name="redis"):
    return one(render(value_set, *sets), "StatefulSet", f"{FULLNAME}-{name}")


def _script(container) -> str:
    assert container["command"][:2] == ["sh", "-c"]
    return container["command"][2]


def test_the_password_reaches_redis_through_a_memory_backed_config_file():
    pod = statefulset()["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    script = _script(container)
    # Shell builtins (printf) write it: no process ever gets the password as an argument.
    assert """printf 'requirepass "%s"\\n' "$(cat /run/secrets/redis/password)\"""" in script
    assert script.strip().splitlines()[-1] == "exec redis-server /run/redis/redis.conf"
    assert "--requirepass" not in script
    assert "env" not in container  # no secret in the environment
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["password"]["secret"]["secretName"] == f"{FULLNAME}-redis"
    assert volumes["config"]["emptyDir"]["medium"] == "Memory"
    assert {"name": "config", "mountPath": "/run/redis"} in container["volumeMounts"]
    assert "redis-cli ping" in container["readinessProbe"]["exec"]["command"][-1]
    assert "REDISCLI_AUTH" in container["livenessProbe"]["exec"]["command"][-1]


def test_accounting_redis_never_evicts():
    script = _script(statefulset()["spec"]["template"]["spec"]["containers"][0])
    assert 'echo "maxmemory-policy noeviction"' in script
    assert 'echo "maxmemory 768mb"' in script and 'echo "appendonly yes"' in script
    assert "lru" not in script


def test_optional_cache_redis_evicts_least_recently_used_and_keeps_nothing():
    assert not find(render(), "StatefulSet", f"{FULLNAME}-redis-cache")
    cache = statefulset("default", "redis.cache.enabled=true", "redis.cache.maxMemory=2gb", name="redis-cache")
    pod = cache["spec"]["template"]["spec"]
    script = _script(pod["containers"][0])
    assert 'echo "maxmemory-policy allkeys-lru"' in script and 'echo "maxmemory 2gb"' in script
    assert 'echo "appendonly no"' in script
    assert "volumeClaimTemplates" not in cache["spec"]
    assert {"name": "data", "emptyDir": {}} in pod["volumes"]
    assert cache["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "redis-cache"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["password"]["secret"]["secretName"] == f"{FULLNAME}-redis-cache"


def test_runs_non_root_read_only():
    for name in ("redis", "redis-cache"):
        pod = statefulset("default", "redis.cache.enabled=true", name=name)["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] >= 10000
        assert pod["automountServiceAccountToken"] is False
        context = pod["containers"][0]["securityContext"]
        assert context == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}


def test_persistence_toggle():
    claims = statefulset()["spec"]["volumeClaimTemplates"]
    assert claims[0]["spec"]["resources"]["requests"]["storage"] == "8Gi"
    fixed = statefulset("fixed")
    assert "volumeClaimTemplates" not in fixed["spec"]
    assert {"name": "data", "emptyDir": {}} in fixed["spec"]["template"]["spec"]["volumes"]
    assert fixed["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"] == "my-redis"


def test_external_redis_removes_it():
    assert not find(render("full"), "StatefulSet")
