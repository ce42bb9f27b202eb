"""templates/rayservice.yaml: the RayService (head, worker groups, autoscaler, GCS FT, drain)."""

from __future__ import annotations

import re

import yaml

from .conftest import FULLNAME, all_pods, one, ray_pods, render, secrets_seen


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
        deployments = {d["name"]: d for d in yaml.safe_load(s["serveConfigV2"])["applications"][0]["deployments"]}
        graceful = max(deployments["Engine"]["graceful_shutdown_timeout_s"],
                       deployments["Gateway"]["graceful_shutdown_timeout_s"])
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
        ray = containers(pod)[0]  # sidecars (full.yaml) come after the Ray container
        assert ray["name"] in ("ray-head", "ray-worker")
        assert ray["livenessProbe"] and ray["readinessProbe"], name
        readiness = ray["readinessProbe"]["exec"]["command"][-1]
        assert ("-/healthz" in readiness) == (name != "head")
        for container in containers(pod) + pod["spec"].get("initContainers", []):
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["resources"]["limits"] and container["resources"]["requests"]


def _env(container) -> dict:
    return {e["name"]: e for e in container["env"]}


def test_each_secret_reaches_only_the_containers_that_use_it():
    """The admin token and the Redis password only where Gateway replicas run (the CPU group),
    the Redis password also in Redis itself; the head and the GPU workers see neither."""
    docs = render("default", "huggingFace.tokenSecret=hf-token", "redis.cache.enabled=true")
    seen = {name: secrets_seen(pod) for name, pod in all_pods(docs).items()}
    admin, redis, cache = f"{FULLNAME}-admin", f"{FULLNAME}-redis", f"{FULLNAME}-redis-cache"
    assert seen == {
        "head": {"ray-head": {"hf-token"}},
        "gpu": {"ray-worker": {"hf-token"}},
        "cpu": {"ray-worker": {"hf-token", admin, redis, cache}},
        redis: {"redis": {redis}},
        cache: {"redis": {cache}},
    }


def test_gateway_secrets_come_from_secret_refs_and_the_hf_token_from_a_file():
    pods = ray_pods(render("default", "huggingFace.tokenSecret=hf-token"))
    env = _env(containers(pods["cpu"])[0])
    assert env["MISTRAL_SERVE_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": f"{FULLNAME}-admin", "key": "token"}
    assert env["MISTRAL_SERVE_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": f"{FULLNAME}-redis", "key": "password"}
    # Kubernetes expands $(VAR) when it starts the container: the pod spec holds no password.
    assert env["MISTRAL_SERVE_REDIS_URL"]["value"] == (
        f"redis://:$(MISTRAL_SERVE_REDIS_PASSWORD)@{FULLNAME}-redis.serving.svc:6379/0")
    for name, pod in pods.items():
        (container,) = containers(pod)
        env = _env(container)
        assert "HF_TOKEN" not in env, name  # never the token itself in the environment
        assert env["HF_TOKEN_PATH"]["value"] == "/run/secrets/huggingface/token"
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        assert mounts["hf-token"] == {"name": "hf-token", "mountPath": "/run/secrets/huggingface", "readOnly": True}
        volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "hf-token")
        assert volume["secret"]["secretName"] == "hf-token"
        assert ("MISTRAL_SERVE_ADMIN_TOKEN" in env) == (name == "cpu")


def test_external_redis_url_and_existing_secrets():
    pods = ray_pods(render("full"))
    gateway_groups = [n for n, p in pods.items() if p["metadata"]["labels"].get("mistral-serve.io/gateway") == "true"]
    assert gateway_groups == ["cpu"]
    env = _env(containers(pods["cpu"])[0])
    assert env["MISTRAL_SERVE_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": f"{FULLNAME}-redis-url", "key": "url"}
    assert env["MISTRAL_SERVE_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "my-admin-token"
    assert "MISTRAL_SERVE_REDIS_PASSWORD" not in env
    for pod in pods.values():
        assert _env(containers(pod)[0])["HF_HUB_OFFLINE"]["value"] == "1"


def test_no_secret_value_or_reference_on_a_command_line(value_set):
    """Commands never carry a secret: no `$(SECRET_VAR)` expansion, no --requirepass."""
    secret_vars = {"MISTRAL_SERVE_ADMIN_TOKEN", "MISTRAL_SERVE_REDIS_PASSWORD", "MISTRAL_SERVE_REDIS_URL",
                   "MISTRAL_SERVE_CACHE_REDIS_PASSWORD", "MISTRAL_SERVE_CACHE_REDIS_URL", "HF_TOKEN", "RAY_AUTH_TOKEN"}
    for name, pod in all_pods(render(value_set)).items():
        for container in pod["spec"]["containers"]:
            words = " ".join(container.get("command", []) + container.get("args", []))
            assert "--requirepass" not in words, name
            assert not any(f"$({var})" in words or f"${var}" in words for var in secret_vars), name


def test_gateway_replicas_are_placed_on_gateway_hosting_groups_only():
    s = spec("default")
    deployments = {d["name"]: d for d in yaml.safe_load(s["serveConfigV2"])["applications"][0]["deployments"]}
    assert deployments["Gateway"]["ray_actor_options"]["resources"] == {"mistral_serve_gateway": 1}
    assert "mistral_serve_gateway" not in str(deployments["Engine"]) + str(deployments["Moderation"])
    groups = {g["groupName"]: g for g in s["rayClusterConfig"]["workerGroupSpecs"]}
    assert groups["cpu"]["resources"] == {"mistral_serve_gateway": "1000"}
    assert "resources" not in groups["gpu"]
    fixed = {g["groupName"]: g for g in spec("fixed")["rayClusterConfig"]["workerGroupSpecs"]}
    assert fixed["gpu"]["resources"] == {"mistral_serve_gateway": "1000"}
    assert fixed["gpu"]["template"]["metadata"]["labels"]["mistral-serve.io/gateway"] == "true"


def test_ray_token_authentication_is_on_by_default():
    assert spec()["rayClusterConfig"]["authOptions"] == {"mode": "token"}
    named = spec("default", "rayAuth.secretName=ray-token")["rayClusterConfig"]["authOptions"]
    assert named == {"mode": "token", "secretName": "ray-token"}
    assert "authOptions" not in spec("default", "rayAuth.enabled=false")["rayClusterConfig"]


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


def test_head_pod_options():
    head = ray_pods(render("full"))["head"]
    spec = head["spec"]
    assert (spec["runtimeClassName"], spec["priorityClassName"]) == ("gvisor", "platform-critical")
    assert spec["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "ray-head"
    assert spec["initContainers"][0]["name"] == "wait-for-dns"
    ray, sidecar = spec["containers"]
    assert (ray["name"], sidecar["name"]) == ("ray-head", "log-shipper")
    assert ray["envFrom"] == [{"configMapRef": {"name": "proxy-settings"}}]
    assert {"name": "ca-bundle", "mountPath": "/etc/ssl/corp", "readOnly": True} in ray["volumeMounts"]
    assert {"name": "ca-bundle", "configMap": {"name": "corp-ca"}} in spec["volumes"]
    assert head["metadata"]["labels"]["role"] == "control"
    assert head["metadata"]["annotations"] == {"example.com/owner": "platform", "example.com/scrape": "false"}


def test_full_values_keep_gateway_secrets_on_the_gateway_group():
    docs = render("full")
    seen = {name: secrets_seen(pod) for name, pod in all_pods(docs).items()}
    for name in ("head", "l4", "h100"):
        assert all(s <= {"hf-token"} for s in seen[name].values()), name
    assert seen["cpu"]["ray-worker"] == {"hf-token", "my-admin-token", f"{FULLNAME}-redis-url"}
    assert seen["cpu"]["log-shipper"] == set()  # the sidecar sees no secret
    assert spec("full")["rayClusterConfig"]["authOptions"] == {"mode": "token", "secretName": "llm-ray-token"}
