"""Kubernetes NetworkPolicy ingress semantics over rendered manifests, for the chart tests.

A pod is isolated for ingress once any policy of its namespace selects it with ``Ingress`` in
``policyTypes``; a connection to it is then allowed when some rule of some selecting policy
matches both the peer and the port (rules without ``ports`` allow every port). Peers are pods
described by their namespace, their namespace's labels and their own labels. ``ipBlock`` peers
match no pod.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Pod:
    """A pod as NetworkPolicy sees it."""

    namespace: str
    labels: dict = field(default_factory=dict)
    namespace_labels: dict | None = None

    @property
    def ns_labels(self) -> dict:
        return {"kubernetes.io/metadata.name": self.namespace, **(self.namespace_labels or {})}


def selects(selector: dict | None, labels: dict) -> bool:
    """A label selector (matchLabels and matchExpressions) matches these labels."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def _peer_matches(peer: dict, source: Pod, policy_namespace: str) -> bool:
    if "ipBlock" in peer:
        return False
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], source.ns_labels):
            return False
    elif source.namespace != policy_namespace:
        return False
    return "podSelector" not in peer or selects(peer["podSelector"], source.labels)


def _port_matches(rule: dict, port: int) -> bool:
    ports = rule.get("ports")
    if not ports:
        return True
    return any(p.get("port") in (None, port) and p.get("protocol", "TCP") == "TCP" for p in ports)


def allowed(policies: list[dict], source: Pod, target: Pod, port: int) -> bool:
    """Whether ``source`` may open a TCP connection to ``target:port``."""
    selecting = [p for p in policies if p["metadata"]["namespace"] == target.namespace
                 and "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
                 and selects(p["spec"]["podSelector"], target.labels)]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get("ingress") or []:
            peers = rule.get("from")
            peer_ok = not peers or any(_peer_matches(peer, source, target.namespace) for peer in peers)
            if peer_ok and _port_matches(rule, port):
                return True
    return False
