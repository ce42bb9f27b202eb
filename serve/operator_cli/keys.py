"""``mistral-serve ops keys``: API key administration through the platform's own ``/admin`` API.

The admin token is read from the Secret the RayService's pods get it from. The API is reached
either at a URL (``--api-url``, e.g. the Ingress) or through a Kubernetes port-forward to a
serving worker pod. (The API server's service proxy would not do: it drops the caller's
Authorization header after authenticating it, and the admin API needs its own bearer token.)
"""

from __future__ import annotations

import base64
import http.client
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..extras import require
from .kube import Clients, OpsError, active_cluster, get_rayservice

TOKEN_ENV = "MISTRAL_SERVE_ADMIN_TOKEN"


class Transport(Protocol):
    """Sends one HTTP request to the API; returns (status, body)."""

    def request(self, method: str, path: str, headers: dict[str, str], body: bytes | None) -> tuple[int, bytes]:
        ...


class UrlTransport:
    """The API at a base URL (http or https)."""

    def __init__(self, base_url: str, timeout_s: float = 30) -> None:
        self._base = base_url.rstrip("/")
        self._timeout = timeout_s

    def request(self, method, path, headers, body):
        httpx = require("httpx", "ops")

        response = httpx.request(method, self._base + path, headers=headers, content=body, timeout=self._timeout)
        return response.status_code, response.content


class SocketTransport:
    """HTTP/1.1 over a socket-like object (a port-forward's); one request per connection."""

    def __init__(self, connect: Callable[[], Any], host: str = "localhost") -> None:
        self._connect = connect
        self._host = host

    def request(self, method, path, headers, body):
        connection = http.client.HTTPConnection(self._host)
        connection.sock = self._connect()
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()


def port_forward_transport(clients: Clients, namespace: str, pod: str, port: int) -> SocketTransport:
    """A port-forward (websocket through the API server) to ``pod:port``."""
    from kubernetes.stream import portforward

    def connect():
        forward = portforward(clients.core.connect_get_namespaced_pod_portforward, pod, namespace, ports=str(port))
        return forward.socket(port)

    return SocketTransport(connect)


def admin_token_ref(rayservice: dict) -> tuple[str, str]:
    """(Secret name, key) the Ray pods read the admin token from (the chart gives it only to the
    worker groups that host Gateway replicas)."""
    cluster = rayservice["spec"]["rayClusterConfig"]
    groups = [cluster["headGroupSpec"], *cluster.get("workerGroupSpecs", [])]
    for group in groups:
        for container in group["template"]["spec"]["containers"]:
            for env in container.get("env", []):
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if env["name"] == TOKEN_ENV and ref:
                    return ref["name"], ref["key"]
    raise OpsError(f"no Ray pod of the RayService sets {TOKEN_ENV} from a Secret: pass --admin-token")


def read_admin_token(clients: Clients, namespace: str, rayservice: dict) -> str:
    """The admin token, from its Secret."""
    from kubernetes.client.exceptions import ApiException

    secret_name, key = admin_token_ref(rayservice)
    try:
        secret = clients.core.read_namespaced_secret(secret_name, namespace)
    except ApiException as error:
        raise OpsError(f"cannot read Secret {namespace}/{secret_name}: {error.status} {error.reason}") from None
    value = (secret.data or {}).get(key)
    if not value:
        raise OpsError(f"Secret {namespace}/{secret_name} has no key {key!r}")
    return base64.b64decode(value).decode()


def serving_pod(clients: Clients, namespace: str, rayservice: dict) -> str:
    """A running worker pod of the active cluster whose Serve proxy is healthy."""
    cluster = active_cluster(rayservice)
    if not cluster:
        raise OpsError("the RayService has no active cluster yet (see `ops status`)")
    pods = clients.core.list_namespaced_pod(
        namespace, label_selector=f"ray.io/cluster={cluster},ray.io/serve=true", field_selector="status.phase=Running")
    names = sorted(p.metadata.name for p in pods.items)
    if not names:
        raise OpsError(f"no pod of {cluster} is serving yet (see `ops status`)")
    return names[0]


def api_port(rayservice: dict) -> int:
    """The Serve HTTP port (serveService's, else 8000)."""
    ports = ((rayservice["spec"].get("serveService") or {}).get("spec") or {}).get("ports") or []
    return int(ports[0].get("targetPort", ports[0]["port"])) if ports else 8000


@dataclass
class AdminApi:
    """The ``/admin`` endpoints of the gateway."""

    transport: Transport
    token: str

    def _call(self, method: str, path: str, payload: dict | None = None) -> dict:
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        body = None
        if payload is not None:
            body = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        status, raw = self.transport.request(method, path, headers, body)
        try:
            data = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            data = {}
        if status >= 400:
            message = (data.get("error") or {}).get("message") if isinstance(data, dict) else None
            raise OpsError(f"admin API {method} {path}: {status} {message or raw[:200]!r}")
        return data

    def create(self, team: str, rpm: int | None = None, tpm: int | None = None, policy: str | None = None,
               models: list[str] | None = None) -> dict:
        """Creates a key (the response holds the key itself, shown once)."""
        payload: dict[str, Any] = {"team": team}
        for name, value in (("rpm", rpm), ("tpm", tpm), ("policy", policy)):
            if value is not None:
                payload[name] = value
        if models:
            payload["models"] = models
        return self._call("POST", "/admin/keys", payload)

    def list(self, team: str | None = None) -> list[dict]:
        """Keys (never the keys themselves)."""
        path = "/admin/keys" + (f"?team={team}" if team else "")
        return self._call("GET", path)["data"]

    def revoke(self, key_id: str) -> dict:
        """Revokes a key."""
        return self._call("DELETE", f"/admin/keys/{key_id}")

    def usage(self, team: str | None = None, since: str | None = None) -> dict:
        """Requests and tokens per team."""
        query = "&".join(f"{k}={v}" for k, v in (("team", team), ("since", since)) if v)
        return self._call("GET", "/admin/usage" + (f"?{query}" if query else ""))


def admin_api(clients: Clients, namespace: str, name: str, api_url: str | None = None,
              admin_token: str | None = None) -> AdminApi:
    """The admin API of a release: token from its Secret, transport per ``api_url``."""
    rayservice = get_rayservice(clients, namespace, name)
    token = admin_token or read_admin_token(clients, namespace, rayservice)
    if api_url:
        return AdminApi(UrlTransport(api_url), token)
    pod = serving_pod(clients, namespace, rayservice)
    return AdminApi(port_forward_transport(clients, namespace, pod, api_port(rayservice)), token)
