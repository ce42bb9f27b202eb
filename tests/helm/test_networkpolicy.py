"""templates/networkpolicy.yaml: ingress rules for the Ray pods and the bundled Redis."""

from __future__ import annotations

from .conftest import FULLNAME, find, one, render


def _ports(rule):
    return sorted(p["port"] for p in rule.get("ports", []))


def test_ray_pods_accept_only_their_release_and_the_named_ports():
    policy = one(render(), "NetworkPolicy", f"{FULLNAME}-ray")
    rules = policy["spec"]["ingress"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert rules[0] == {"from": [{"podSelector": {"matchLabels": {
        "app.kubernetes.io/name": "mistral-serve", "app.kubernetes.io/instance": "llm"}}}]}
    assert [_ports(r) for r in rules[1:]] == [[8000], [8080, 44217], [8265, 52365]]


def test_redis_accepts_only_the_release_on_6379():
    policy = one(render(), "NetworkPolicy", f"{FULLNAME}-redis")
    (rule,) = policy["spec"]["ingress"]
    assert _ports(rule) == [6379]
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "redis"
    assert not find(render("full"), "NetworkPolicy", f"{FULLNAME}-redis")  # external Redis


def test_toggle():
    assert not find(render("fixed"), "NetworkPolicy")
