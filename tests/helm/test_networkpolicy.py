"""templates/networkpolicy.yaml: who may reach which port, evaluated on the rendered policies
with Kubernetes' NetworkPolicy semantics (tests/helm/netpol.py)."""

from __future__ import annotations

import pytest

from .conftest import FULLNAME, NAMESPACE, find, one, ray_pods, render
from .netpol import Pod, allowed, selects

RAY_PORTS = {"gcs": 6379, "client": 10001, "dashboard": 8265, "agent": 52365, "object-manager": 8076,
             "worker": 10002, "api": 8000, "metrics": 8080, "autoscaler-metrics": 44217}
OPERATOR = Pod("kuberay-system", {"app.kubernetes.io/name": "kuberay-operator"})
INGRESS_CONTROLLER = Pod("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"})
PROMETHEUS = Pod("monitoring", {"app.kubernetes.io/name": "prometheus"})
NEIGHBOUR = Pod(NAMESPACE, {"app": "some-other-app"})
STRANGER = Pod("default", {})
# A pod elsewhere that copies the release's labels (and the operator's) gets nothing.
LOOKALIKE = Pod("tenant-x", {"app.kubernetes.io/name": "mistral-serve", "app.kubernetes.io/instance": "llm",
                             "mistral-serve.io/gateway": "true"})
FAKE_OPERATOR = Pod("tenant-x", {"app.kubernetes.io/name": "kuberay-operator"})


def _pods(docs) -> dict[str, Pod]:
    pods = {name: Pod(NAMESPACE, t["metadata"]["labels"]) for name, t in ray_pods(docs).items()}
    for statefulset in find(docs, "StatefulSet"):
        pods[statefulset["metadata"]["name"].removeprefix(f"{FULLNAME}-")] = Pod(
            NAMESPACE, statefulset["spec"]["template"]["metadata"]["labels"])
    return pods


def _reachable(policies, source: Pod, target: Pod) -> set[str]:
    return {name for name, port in RAY_PORTS.items() if allowed(policies, source, target, port)}


@pytest.fixture(scope="module")
def default():
    docs = render("default", "redis.cache.enabled=true")
    return find(docs, "NetworkPolicy"), _pods(docs)


def test_every_ray_pod_is_selected_and_redis_pods_by_their_own_policy(default):
    policies, pods = default
    ray_policy = next(p for p in policies if p["metadata"]["name"] == f"{FULLNAME}-ray")
    for name, pod in pods.items():
        assert selects(ray_policy["spec"]["podSelector"], pod.labels) == (not name.startswith("redis")), name
    assert {p["metadata"]["name"] for p in policies} == {f"{FULLNAME}-{n}" for n in ("ray", "redis", "redis-cache")}


def test_ray_ports_only_from_the_release_and_the_operator(default):
    policies, pods = default
    ray = {name: pod for name, pod in pods.items() if not name.startswith("redis")}
    assert set(ray) == {"head", "gpu", "cpu"}
    for name, target in ray.items():
        for source in ray.values():  # Ray's own traffic: every port, both ways
            assert _reachable(policies, source, target) == set(RAY_PORTS), name
        # The operator: the dashboard, its agent and the Serve proxies' health, nothing of the GCS.
        assert _reachable(policies, OPERATOR, target) == {"dashboard", "agent", "api"}
        assert _reachable(policies, INGRESS_CONTROLLER, target) == {"api"}
        assert _reachable(policies, PROMETHEUS, target) == {"metrics", "autoscaler-metrics"}
        for outsider in (NEIGHBOUR, STRANGER, LOOKALIKE, FAKE_OPERATOR, pods["redis"], pods["redis-cache"]):
            assert _reachable(policies, outsider, target) == set(), (name, outsider)


def test_redis_only_from_gateway_hosting_pods(default):
    policies, pods = default
    for redis in ("redis", "redis-cache"):
        target = pods[redis]
        assert allowed(policies, pods["cpu"], target, 6379)  # hosts the Gateway
        assert not allowed(policies, pods["cpu"], target, 6380)
        for source in ("head", "gpu"):
            assert not allowed(policies, pods[source], target, 6379), (source, redis)
        for outsider in (NEIGHBOUR, STRANGER, LOOKALIKE, OPERATOR, INGRESS_CONTROLLER, PROMETHEUS):
            assert not allowed(policies, outsider, target, 6379)


def test_peers_are_configurable(tmp_path):
    internal = Pod("edge", {"app": "internal-lb"})
    apiserver = Pod("kube-system", {"component": "kube-apiserver"})
    extra = {"networkPolicy": {
        "apiFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "edge"}}}],
        "operatorFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ray-system"}},
                          "podSelector": {"matchLabels": {"app.kubernetes.io/name": "kuberay-operator"}}}],
        "dashboardFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                           "podSelector": {"matchLabels": {"component": "kube-apiserver"}}}],
        "metricsFrom": [],
    }}
    docs = render("default", extra=extra, tmp=tmp_path)
    policies, head = find(docs, "NetworkPolicy"), _pods(docs)["head"]
    assert _reachable(policies, internal, head) == {"api"}
    assert _reachable(policies, INGRESS_CONTROLLER, head) == set()
    assert _reachable(policies, OPERATOR, head) == set()  # the operator lives in ray-system now
    assert _reachable(policies, Pod("ray-system", OPERATOR.labels), head) == {"dashboard", "agent", "api"}
    assert _reachable(policies, apiserver, head) == {"dashboard"}
    assert _reachable(policies, PROMETHEUS, head) == set()  # metricsFrom empty: no scraping from outside


def test_the_evaluator_knows_unselected_pods_are_open():
    assert allowed([], STRANGER, NEIGHBOUR, 1234)


def test_external_redis_has_no_redis_policy():
    assert not find(render("full"), "NetworkPolicy", f"{FULLNAME}-redis")
    assert one(render("full"), "NetworkPolicy", f"{FULLNAME}-ray")


def test_toggle():
    assert not find(render("fixed"), "NetworkPolicy")
