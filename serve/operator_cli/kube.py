"""Kubernetes clients and the names the chart gives things."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..extras import require

GROUP, VERSION, PLURAL = "ray.io", "v1", "rayservices"
DASHBOARD_PORT = 8265


class OpsError(RuntimeError):
    """An operation cannot be done; the message says why (shown to the operator as is)."""


@dataclass
class Clients:
    """The API objects the ops commands use (one ApiClient underneath)."""

    api_client: Any
    core: Any
    custom: Any

    @classmethod
    def connect(cls, kubeconfig: str | None = None, context: str | None = None) -> Clients:
        """Loads the in-cluster config when running in a pod, else the kubeconfig."""
        client, config = require("kubernetes.client", "ops"), require("kubernetes.config", "ops")

        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config(config_file=kubeconfig, context=context)
        return cls.of(client.ApiClient())

    @classmethod
    def of(cls, api_client) -> Clients:
        """Clients over an existing ApiClient (tests point one at a local server)."""
        client = require("kubernetes.client", "ops")

        return cls(api_client, client.CoreV1Api(api_client), client.CustomObjectsApi(api_client))


def get_rayservice(clients: Clients, namespace: str, name: str) -> dict:
    """The RayService object.

    Raises:
        OpsError: it does not exist (or cannot be read).
    """
    from kubernetes.client.exceptions import ApiException

    try:
        return clients.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except ApiException as error:
        if error.status == 404:
            raise OpsError(f"no RayService {name!r} in namespace {namespace!r}") from None
        raise OpsError(f"cannot read RayService {namespace}/{name}: {error.status} {error.reason}") from None


def active_cluster(rayservice: dict) -> str | None:
    """Name of the RayCluster serving traffic (None before the first one is ready)."""
    return (rayservice.get("status") or {}).get("activeServiceStatus", {}).get("rayClusterName") or None


def pending_cluster(rayservice: dict) -> str | None:
    """Name of the RayCluster an upgrade is preparing, if any."""
    return (rayservice.get("status") or {}).get("pendingServiceStatus", {}).get("rayClusterName") or None


def head_service(cluster: str) -> str:
    """KubeRay's head Service of a RayCluster."""
    return f"{cluster}-head-svc"


def service_proxy_get(clients: Clients, namespace: str, service: str, path: str) -> bytes:
    """GET ``path`` of a Service through the API server's service proxy.

    The generated ``connect_get_namespaced_service_proxy_with_path`` percent-encodes the slashes
    of ``path``; this sends the path as it is.

    Raises:
        kubernetes.client.exceptions.ApiException: the proxy or the service answered an error.
    """
    from kubernetes.client.exceptions import ApiException

    params = clients.api_client.param_serialize(
        method="GET",
        resource_path=f"/api/v1/namespaces/{namespace}/services/{service}/proxy/{path.lstrip('/')}",
        header_params={"Accept": "application/json"},
        auth_settings=["BearerToken"],
    )
    response = clients.api_client.call_api(*params)
    response.read()
    if not 200 <= response.status < 300:
        raise ApiException(http_resp=response)
    return response.data
