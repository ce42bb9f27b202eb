"""templates/redis-statefulset.yaml: the small bundled Redis (with auth)."""

from __future__ import annotations

from .conftest import FULLNAME, find, one, render


def statefulset(value_set="default", *sets):
    return one(render(value_set, *sets), "StatefulSet", f"{FULLNAME}-redis")


def test_bundled_redis_requires_the_password_read_from_a_file():
    pod = statefulset()["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    command = container["command"][-1]
    assert '--requirepass "$(cat /run/secrets/redis/password)"' in command
    assert "--maxmemory 768mb" in command
    assert "env" not in container  # no secret in the environment
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["password"]["secret"]["secretName"] == f"{FULLNAME}-redis"
    assert "redis-cli ping" in container["readinessProbe"]["exec"]["command"][-1]
    assert "REDISCLI_AUTH" in container["livenessProbe"]["exec"]["command"][-1]


def test_runs_non_root_read_only():
    pod = statefulset()["spec"]["template"]["spec"]
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
