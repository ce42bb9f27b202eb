"""templates/_helpers.tpl: names, drain arithmetic and the `fail` checks."""

from __future__ import annotations

import pytest

from .conftest import RenderError, render, render_text


@pytest.mark.parametrize("sets, message", [
    (("gcsFaultTolerance.enabled=true",), "gcsFaultTolerance.redisAddress"),
    (("redis.bundled=false",), "redis.external.url"),
    (("redis.external.url=redis://x:6379/0",), "either redis.bundled or redis.external"),
    (("gpuWorkers.minReplicas=3", "gpuWorkers.maxReplicas=2"), 'group "gpu": maxReplicas must be at least'),
    (("cpuWorkers.minReplicas=3", "cpuWorkers.maxReplicas=2"), 'group "cpu": maxReplicas must be at least'),
    (("serve.engine.deployment.autoscaling.minReplicas=5",), "maxReplicas must be at least minReplicas"),
    (("serve.engine.deployment.numGpus=2",), "numGpus exceeds every GPU group's gpusPerWorker"),
    (("serve.engine.deployment.autoscaling.minReplicas=4", "gpuWorkers.maxReplicas=2"), "minReplicas x numGpus"),
    (("drain.terminationGracePeriodSeconds=60",), "in-flight requests would be killed"),
    (("huggingFace.modelCache.enabled=true", "huggingFace.modelCache.accessModes={ReadWriteOnce}"), "needs ReadWriteMany"),
    (("gpuWorkerGroups[0].groupName=cpu",), 'worker group name "cpu" is used twice'),
    (("gpuWorkerGroups[0].groupName=a", "gpuWorkerGroups[0].minReplicas=5"), 'group "a": maxReplicas must be at least'),
    (("cpuWorkers.enabled=false",), "no worker group hosts the Gateway"),
    (("rayAuth.enabled=false", "rayAuth.secretName=t"), "Ray would run without authentication"),
    (("cpuWorkers.hostsGateway=false",), "no worker group hosts the Gateway"),
    (("redis.cache.enabled=true", "redis.bundled=false", "redis.external.url=redis://r:6379/0"), "redis.cache.enabled needs redis.bundled"),
    (("cpuWorkers.rayStartParams.resources=x",), "rayResources, not rayStartParams.resources"),
])
def test_misconfigurations_fail_with_a_message(sets, message):
    with pytest.raises(RenderError, match=message):
        render_text("default", *sets)


def test_names_follow_release_and_overrides():
    assert {d["metadata"]["name"] for d in render("default", "fullnameOverride=llm")} >= {"llm", "llm-admin", "llm-redis"}
    names = {d["metadata"]["name"] for d in render("default")}
    assert "llm-mistral-serve" in names


def test_grace_period_is_computed_from_the_serve_config():
    docs = render("default", "serve.engine.deployment.gracefulShutdownTimeoutS=45",
                  "serve.gateway.deployment.gracefulShutdownTimeoutS=45", "drain.marginSeconds=5")
    group = docs[-1]["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["template"]["spec"]
    assert group["terminationGracePeriodSeconds"] == 45 + 45 + 5
