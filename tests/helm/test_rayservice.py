"""templates/rayservice.yaml: the RayService (head, worker groups, autoscaler, GCS FT, drain)."""

from __future__ import annotations

import re

from .conftest import FULLNAME, one, ray_pods, render


def spec(value_set="default", *sets):
    return one(render(value_set, *sets), "RayService")["spec"]


def containers(pod):
    return pod["spec"]["containers"]


def test_head_runs_no_model_and_takes_no_api_traffic():
    s = spec()
    head = s["rayClusterConfig"]["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    assert head["rayStartParams"]["metrics-export-port"] == "8080"
    (container,) = containers(head["template"])
    assert "nvidia.com/gpu" not in str(container["resources"])
    assert s["excludeHeadPodFromServeSvc"] is True


def test_gpu_worker_group_requests_gpus_on_gpu_nodes():
    (gpu, cpu) = spec()["rayClusterConfig"]["workerGroupSpecs"]
    assert (gpu["groupName"], gpu["minReplicas"], gpu["maxReplicas"]) == ("gpu", 1, 4)
    pod = gpu["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["resources"]["requests"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    assert cpu["groupName"] == "cpu" and "nvidia.com/gpu" not in str(cpu["template"])
    fixed = spec("fixed")["rayClusterConfig"]["workerGroupSpecs"]
    assert [g["groupName"] for g in fixed] == ["gpu"]
    assert fixed[0]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 2
    tiny = spec("tiny-cpu")["rayClusterConfig"]["workerGroupSpecs"][0]
    assert "nvidia.com/gpu" not in str(tiny["template"]["spec"]["containers"][0]["resources"])


def test_ray_autoscaler_toggle():
    cluster = spec()["rayClusterConfig"]
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["autoscalerOptions"]["upscalingMode"] == "Default"
    off = spec("fixed")["rayClusterConfig"]
    assert off["enableInTreeAutoscaling"] is False and "autoscalerOptions" not in off


def test_gcs_fault_tolerance_on_external_redis_is_optional():
    assert "gcsFaultToleranceOptions" not in spec()["rayClusterConfig"]
    options = spec("full")["rayClusterConfig"]["gcsFaultToleranceOptions"]
    assert options["redisAddress"] == "gcs-redis.example.svc:6379"
    assert options["redisPassword"]["valueFrom"]["secretKeyRef"] == {"name": "gcs-redis", "key": "password"}


def test_upgrade_strategy_and_api_service():
    s = spec()
    assert s["upgradeStrategy"] == {"type": "NewCluster"}
    assert s["serveService"]["metadata"]["name"] == f"{FULLNAME}-api"
    assert s["serveService"]["spec"]["ports"] == [{"name": "serve", "port": 8000, "targetPort": 8000}]
    assert spec("fixed")["upgradeStrategy"] == {"type": "None"}


def _pre_stop_sleep(container) -> int:
    """The longest the worker preStop waits for the drained raylet to exit."""
    command = container["lifecycle"]["preStop"]["exec"]["command"][-1]
    return int(re.search(r"seq (\d+)", command).group(1))


def test_drain_is_wired_end_to_end():
    """terminationGracePeriodSeconds >= preStop + Serve's graceful shutdown, on every worker."""
    for value_set in ("default", "fixed", "tiny-cpu"):
        s = spec(value_set)
        import yaml

        args = yaml.safe_load(s["serveConfigV2"])["applications"][0]["args"]
        graceful = max(args["engine"]["deployment"]["graceful_shutdown_timeout_s"],
                       args["gateway"]["deployment"]["graceful_shutdown_timeout_s"])
        for group in s["rayClusterConfig"]["workerGroupSpecs"]:
            pod = group["template"]["spec"]
            (container,) = pod["containers"]
            pre_stop = _pre_stop_sleep(container)
            assert "ray drain-node" in container["lifecycle"]["preStop"]["exec"]["command"][-1]
            assert pod["terminationGracePeriodSeconds"] >= pre_stop + graceful, value_set
            env = {e["name"]: e.get("value") for e in container["env"]}
            assert int(env["RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"]) == graceful, value_set
        (head,) = s["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"]
        assert {"name": "RAY_SERVE_FORCE_STOP_UNHEALTHY_REPLICAS", "value": "1"} in head["env"]
    default = spec()["rayClusterConfig"]["workerGroupSpecs"][0]["template"]["spec"]
    assert default["terminationGracePeriodSeconds"] == 120 + 120 + 15
    fixed = spec("fixed")["rayClusterConfig"]["workerGroupSpecs"][0]["template"]["spec"]
    assert (fixed["terminationGracePeriodSeconds"], _pre_stop_sleep(fixed["containers"][0])) == (200, 30)


def test_every_ray_pod_runs_non_root_with_probes(value_set):
    for name, pod in ray_pods(render(value_set)).items():
        security = pod["spec"]["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] != 0, name
        assert pod["spec"]["automountServiceAccountToken"] is False
        for container in containers(pod):
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["livenessProbe"] and container["readinessProbe"], name
            readiness = container["readinessProbe"]["exec"]["command"][-1]
            assert ("-/healthz" in readiness) == (name != "head")
            assert container["resources"]["limits"] and container["resources"]["requests"]


def _env(container) -> dict:
    return {e["name"]: e for e in container["env"]}


def test_secrets_reach_the_replicas_only_through_secret_refs():
    for pod in ray_pods(render("default")).values():
        env = _env(containers(pod)[0])
        assert env["MISTRAL_SERVE_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": f"{FULLNAME}-admin", "key": "token"}
        assert env["MISTRAL_SERVE_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == f"{FULLNAME}-redis"
        assert env["MISTRAL_SERVE_REDIS_URL"]["value"] == (
            f"redis://:$(MISTRAL_SERVE_REDIS_PASSWORD)@{FULLNAME}-redis.serving.svc:6379/0")
    for pod in ray_pods(render("full")).values():
        env = _env(containers(pod)[0])
        assert env["MISTRAL_SERVE_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": f"{FULLNAME}-redis-url", "key": "url"}
        assert env["MISTRAL_SERVE_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "my-admin-token"
        assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "hf-token", "key": "token"}
        assert env["HF_HUB_OFFLINE"]["value"] == "1"
        assert "MISTRAL_SERVE_REDIS_PASSWORD" not in env
        assert {"name": "model-cache", "mountPath": "/home/ray/.cache/huggingface"} in containers(pod)[0]["volumeMounts"]


def test_image_tag_digest_and_pull_secrets():
    pods = ray_pods(render("default"))
    assert containers(pods["head"])[0]["image"] == "registry.example.com/platform/mistral-serve:0.1.0"
    pods = ray_pods(render("full"))
    for pod in pods.values():
        assert containers(pod)[0]["image"].endswith("@sha256:" + "0" * 64)
        assert pod["spec"]["imagePullSecrets"] == [{"name": "registry-cred"}]
        assert pod["metadata"]["labels"]["team"] == "platform"


def test_policies_are_mounted_read_only_in_every_ray_pod():
    for pod in ray_pods(render("default")).values():
        mounts = {m["name"]: m for m in containers(pod)[0]["volumeMounts"]}
        assert mounts["policies"] == {"name": "policies", "mountPath": "/etc/mistral-serve/policies", "readOnly": True}
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        assert volumes["policies"]["configMap"]["name"] == f"{FULLNAME}-policies"
