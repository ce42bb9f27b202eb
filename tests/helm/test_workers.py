"""templates/_workers.tpl: the worker group template shared by every GPU group and the CPU group,
with the per-group pod options, and the list of GPU groups (gpuWorkerGroups over gpuWorkers)."""

from __future__ import annotations

from .conftest import FULLNAME, one, ray_pods, render


def groups(value_set="default", *sets, **kwargs):
    return one(render(value_set, *sets, **kwargs), "RayService")["spec"]["rayClusterConfig"]["workerGroupSpecs"]


def by_name(value_set="default", *sets, **kwargs):
    return {g["groupName"]: g for g in groups(value_set, *sets, **kwargs)}


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


def test_gpu_worker_groups_list_each_item_merged_over_gpu_workers():
    groups_ = by_name("full")
    assert list(groups_) == ["l4", "h100", "cpu"]
    l4, h100 = groups_["l4"], groups_["h100"]
    assert (l4["minReplicas"], l4["maxReplicas"], h100["minReplicas"], h100["maxReplicas"]) == (1, 8, 0, 2)
    l4_pod, h100_pod = l4["template"]["spec"], h100["template"]["spec"]
    # Each pool's own node selector merged with the shared one.
    assert l4_pod["nodeSelector"] == {"nvidia.com/gpu.present": "true", "nvidia.com/gpu.product": "NVIDIA-L4"}
    assert h100_pod["nodeSelector"]["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    assert l4_pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert h100_pod["containers"][0]["resources"]["limits"] == {"cpu": "16", "memory": "128Gi", "nvidia.com/gpu": 2}
    assert {v["name"]: v for v in h100_pod["volumes"]}["dshm"]["emptyDir"]["sizeLimit"] == "32Gi"
    assert l4["resources"] == {"accelerator_type:L4": "1"} and h100["resources"] == {"accelerator_type:H100": "1"}
    # Shared GPU options reach both pools; per-pool ones only their own.
    assert l4_pod["runtimeClassName"] == h100_pod["runtimeClassName"] == "nvidia"
    assert (l4_pod["priorityClassName"], h100_pod["priorityClassName"]) == ("inference", "inference-premium")
    assert "initContainers" not in l4_pod and h100_pod["initContainers"][0]["name"] == "gpu-check"
    assert l4["template"]["metadata"]["labels"]["pool"] == "l4"
    assert h100["template"]["metadata"]["labels"]["pool"] == "h100"
    assert l4["template"]["metadata"]["labels"]["role"] == "inference"
    # Each pool gets its own PodDisruptionBudget.
    budgets = {b["metadata"]["name"] for b in render("full") if b["kind"] == "PodDisruptionBudget"}
    assert budgets == {f"{FULLNAME}-{n}" for n in ("l4", "h100", "cpu")}


def test_per_group_pod_options():
    pods = ray_pods(render("full"))
    cpu = pods["cpu"]
    spec = cpu["spec"]
    assert (spec["runtimeClassName"], spec["priorityClassName"]) == ("gvisor", "platform")
    (constraint,) = spec["topologySpreadConstraints"]
    # No labelSelector given: it selects this group's pods.
    assert constraint["labelSelector"] == {"matchLabels": {
        "app.kubernetes.io/name": "mistral-serve", "app.kubernetes.io/instance": "llm",
        "app.kubernetes.io/component": "ray-worker-cpu"}}
    assert constraint["topologyKey"] == "topology.kubernetes.io/zone"
    (h100_constraint,) = pods["h100"]["spec"]["topologySpreadConstraints"]
    assert h100_constraint["labelSelector"] == {"matchLabels": {"pool": "h100"}}  # given: kept
    ray, sidecar = spec["containers"]
    assert (ray["name"], sidecar["name"]) == ("ray-worker", "log-shipper")
    assert ray["envFrom"] == [{"configMapRef": {"name": "proxy-settings"}}]
    assert {"name": "ca-bundle", "mountPath": "/etc/ssl/corp", "readOnly": True} in ray["volumeMounts"]
    assert {"name": "ca-bundle", "configMap": {"name": "corp-ca"}} in spec["volumes"]
    labels, annotations = cpu["metadata"]["labels"], cpu["metadata"]["annotations"]
    assert labels["role"] == "gateway" and labels["team"] == "platform"  # group's and podLabels
    assert annotations == {"example.com/owner": "gateway-team"}  # the group's wins over podAnnotations
    assert pods["l4"]["metadata"]["annotations"] == {"example.com/owner": "platform", "example.com/gpu": "true"}


def test_defaults_add_no_per_group_options():
    for name, pod in ray_pods(render("default")).items():
        spec = pod["spec"]
        for key in ("runtimeClassName", "priorityClassName", "topologySpreadConstraints", "initContainers"):
            assert key not in spec, (name, key)
        assert len(spec["containers"]) == 1 and "envFrom" not in spec["containers"][0]
