"""templates/_workers.tpl: the worker group template shared by the GPU and CPU groups."""

from __future__ import annotations

from .conftest import one, render


def groups(value_set="default", *sets, **kwargs):
    return one(render(value_set, *sets, **kwargs), "RayService")["spec"]["rayClusterConfig"]["workerGroupSpecs"]


def test_each_group_has_its_component_label_and_idle_timeout():
    for group in groups():
        labels = group["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == f"ray-worker-{group['groupName']}"
        assert group["idleTimeoutSeconds"] == 300
        assert group["rayStartParams"]["metrics-export-port"] == "8080"


def test_group_overrides_apply_to_their_group_only(tmp_path):
    extra = {"gpuWorkers": {"rayStartParams": {"object-store-memory": "1000000000"}},
             "cpuWorkers": {"nodeSelector": {"pool": "cpu"}}}
    (gpu, cpu) = groups("default", extra=extra, tmp=tmp_path)
    assert gpu["rayStartParams"]["object-store-memory"] == "1000000000"
    assert "object-store-memory" not in cpu["rayStartParams"]
    assert cpu["template"]["spec"]["nodeSelector"] == {"pool": "cpu"}
    assert gpu["template"]["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
