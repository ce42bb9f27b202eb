"""``mistral-serve ops status``: RayService conditions, Serve application status, replicas per
deployment and pending GPU worker pods."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from .kube import (
    DASHBOARD_PORT,
    Clients,
    active_cluster,
    get_rayservice,
    head_service,
    pending_cluster,
    service_proxy_get,
)


@dataclass
class DeploymentStatus:
    """One Serve deployment of the application."""

    name: str
    status: str
    message: str = ""
    target_replicas: int | None = None
    running_replicas: int | None = None


@dataclass
class PendingPod:
    """A Ray worker pod that is not scheduled or not started yet."""

    name: str
    group: str
    gpus: str
    reason: str


@dataclass
class Status:
    """What ``ops status`` reports."""

    name: str
    namespace: str
    conditions: list[dict] = field(default_factory=list)
    service_status: str = ""
    active_cluster: str | None = None
    pending_cluster: str | None = None
    applications: dict[str, str] = field(default_factory=dict)
    deployments: list[DeploymentStatus] = field(default_factory=list)
    replicas_source: str = ""
    pending_pods: list[PendingPod] = field(default_factory=list)

    def as_json(self) -> str:
        """JSON for scripts (``--json``)."""
        return json.dumps(asdict(self), indent=2)


def collect(clients: Clients, namespace: str, name: str) -> Status:
    """Reads everything ``ops status`` shows."""
    rayservice = get_rayservice(clients, namespace, name)
    state = rayservice.get("status") or {}
    status = Status(
        name=name, namespace=namespace,
        conditions=[{k: c.get(k, "") for k in ("type", "status", "reason", "message")} for c in state.get("conditions", [])],
        service_status=state.get("serviceStatus", ""),
        active_cluster=active_cluster(rayservice),
        pending_cluster=pending_cluster(rayservice),
    )
    deployments: dict[str, DeploymentStatus] = {}
    for app, app_status in (state.get("activeServiceStatus") or {}).get("applicationStatuses", {}).items():
        status.applications[app] = app_status.get("status", "")
        for dep, dep_status in app_status.get("serveDeploymentStatuses", {}).items():
            deployments[dep] = DeploymentStatus(dep, dep_status.get("status", ""), dep_status.get("message", ""))
    if status.active_cluster:
        status.replicas_source = _add_replica_counts(clients, namespace, status.active_cluster, deployments)
    status.deployments = list(deployments.values())
    for cluster in filter(None, (status.active_cluster, status.pending_cluster)):
        status.pending_pods += pending_worker_pods(clients, namespace, cluster)
    return status


def _add_replica_counts(clients: Clients, namespace: str, cluster: str, deployments: dict[str, DeploymentStatus]) -> str:
    """Target and running replicas from the Ray dashboard's Serve API, through the API server's
    service proxy to the head. Returns where the counts came from (or why they are missing)."""
    from kubernetes.client.exceptions import ApiException

    service = f"{head_service(cluster)}:{DASHBOARD_PORT}"
    try:
        data = json.loads(service_proxy_get(clients, namespace, service, "api/serve/applications/"))
    except ApiException as error:
        return f"unavailable: the Ray dashboard answered {error.status} {error.reason}"
    except ValueError:
        return "unavailable: the Ray dashboard's answer is not JSON"
    for app in (data.get("applications") or {}).values():
        for dep_name, detail in (app.get("deployments") or {}).items():
            dep = deployments.setdefault(dep_name, DeploymentStatus(dep_name, detail.get("status", "")))
            dep.target_replicas = detail.get("target_num_replicas")
            dep.running_replicas = sum(1 for r in detail.get("replicas", []) if r.get("state") == "RUNNING")
    return f"Ray dashboard of {cluster}"


def pending_worker_pods(clients: Clients, namespace: str, cluster: str) -> list[PendingPod]:
    """Worker pods of a RayCluster still Pending, with the scheduler's reason."""
    pods = clients.core.list_namespaced_pod(
        namespace, label_selector=f"ray.io/cluster={cluster},ray.io/node-type=worker", field_selector="status.phase=Pending")
    pending = []
    for pod in pods.items:
        gpus = ""
        for container in pod.spec.containers:
            limits = (container.resources.limits or {}) if container.resources else {}
            gpus = str(limits.get("nvidia.com/gpu", gpus))
        reason = ""
        for condition in (pod.status.conditions or []) if pod.status else []:
            if condition.type == "PodScheduled" and condition.status == "False":
                reason = f"{condition.reason}: {condition.message}"
        pending.append(PendingPod(pod.metadata.name, (pod.metadata.labels or {}).get("ray.io/group", ""), gpus,
                                  reason or "scheduled, starting"))
    return pending


def format_status(status: Status) -> str:
    """The human-readable report."""
    lines = [f"RayService {status.namespace}/{status.name}: {status.service_status or 'unknown'}"]
    lines.append(f"  active cluster: {status.active_cluster or '-'}"
                 + (f"   upgrading to: {status.pending_cluster}" if status.pending_cluster else ""))
    for c in status.conditions:
        lines.append(f"  condition {c['type']}={c['status']} {c['reason']} {c['message']}".rstrip())
    for app, app_status in status.applications.items():
        lines.append(f"application {app}: {app_status}")
    if status.deployments:
        lines.append(f"deployments (replicas from {status.replicas_source or 'nowhere'}):")
        lines.append(f"  {'name':<14}{'status':<12}{'running/target':<16}message")
        for d in status.deployments:
            counts = "-" if d.target_replicas is None else f"{d.running_replicas}/{d.target_replicas}"
            lines.append(f"  {d.name:<14}{d.status:<12}{counts:<16}{d.message}".rstrip())
    lines.append(f"pending worker pods: {len(status.pending_pods)}")
    for p in status.pending_pods:
        lines.append(f"  {p.name} (group {p.group}, nvidia.com/gpu {p.gpus or 0}): {p.reason}")
    return "\n".join(lines)
