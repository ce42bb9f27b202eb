"""``mistral-serve ops`` against a fake Kubernetes API server over real HTTP.

No real API server can run here (neither Debian nor PyPI ships kube-apiserver), so the real
kubernetes client talks to a small HTTP server that implements the endpoints the commands use:
the RayService (GET, JSON Patch with `test`), pods (label and field selectors), Secrets, and the
service proxy to the Ray dashboard. The RayService is the one the chart renders, and a patched
RayService must still be valid for KubeRay's CRD. Not covered: the websocket port-forward itself
(its HTTP-over-socket half is tested with a plain socket) and KubeRay's reaction to a patch.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import shutil
import socket
import subprocess
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from ops.chart import CHART, ROOT, crd_errors
from serve.cli import build_parser
from serve.operator_cli import cli as ops_cli
from serve.operator_cli.keys import AdminApi, SocketTransport, UrlTransport, admin_api, api_port, serving_pod
from serve.operator_cli.kube import Clients, OpsError
from serve.operator_cli.scale import ScaleRequest, apply_scale, scale_patch
from serve.operator_cli.status import collect, format_status

NS, NAME, CLUSTER = "llm", "llm-mistral-serve", "llm-mistral-serve-raycluster-abcde"
ADMIN_TOKEN = "admin-token-from-secret"


def rendered_rayservice() -> dict:
    """The chart's RayService (default values) with a status as KubeRay writes it."""
    return copy.deepcopy(_rendered_rayservice())


@functools.cache
def _rendered_rayservice() -> dict:
    helm = ROOT / ".venv-tools" / "bin" / "helm"
    helm = str(helm) if helm.exists() else shutil.which("helm")
    if helm is None:
        pytest.fail("helm is not installed: run `bash ops/tools/install.sh` (make test does)")
    out = subprocess.run([helm, "template", "llm", str(CHART), "-n", NS, "--show-only", "templates/rayservice.yaml"],
                         capture_output=True, text=True, check=True).stdout
    rayservice = yaml.safe_load(out)
    rayservice["status"] = {
        "serviceStatus": "Running",
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "RayServiceReady", "message": "", "lastTransitionTime": "x"},
            {"type": "UpgradeInProgress", "status": "False", "reason": "NoPendingCluster", "message": ""},
        ],
        "activeServiceStatus": {
            "rayClusterName": CLUSTER,
            "applicationStatuses": {"mistral-serve": {"status": "RUNNING", "serveDeploymentStatuses": {
                "Gateway": {"status": "HEALTHY"},
                "Engine": {"status": "UPSCALING", "message": "Upscaling from 1 to 2 replicas."},
            }}},
        },
    }
    return rayservice


def pod(name: str, labels: dict, phase: str, gpus: int = 0, unschedulable: str | None = None) -> dict:
    conditions = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": unschedulable}] \
        if unschedulable else [{"type": "PodScheduled", "status": "True"}]
    resources = {"limits": {"nvidia.com/gpu": str(gpus)}} if gpus else {}
    return {"metadata": {"name": name, "namespace": NS, "labels": labels},
            "spec": {"containers": [{"name": "ray-worker", "image": "x", "resources": resources}]},
            "status": {"phase": phase, "conditions": conditions}}


class FakeKube:
    """The state behind the fake API server, and the requests it saw."""

    def __init__(self) -> None:
        self.rayservice = rendered_rayservice()
        worker = {"ray.io/cluster": CLUSTER, "ray.io/node-type": "worker"}
        self.pods = [
            pod("gpu-0", worker | {"ray.io/group": "gpu", "ray.io/serve": "true"}, "Running", gpus=1),
            pod("gpu-1", worker | {"ray.io/group": "gpu", "ray.io/serve": "false"}, "Pending", gpus=1,
                unschedulable="0/3 nodes are available: 3 Insufficient nvidia.com/gpu."),
            pod("cpu-0", worker | {"ray.io/group": "cpu", "ray.io/serve": "true"}, "Running"),
            pod("head", {"ray.io/cluster": CLUSTER, "ray.io/node-type": "head", "ray.io/serve": "false"}, "Running"),
        ]
        self.secrets = {f"{NAME}-admin": {"token": base64.b64encode(ADMIN_TOKEN.encode()).decode()}}
        self.serve_details = {"applications": {"mistral-serve": {"status": "RUNNING", "deployments": {
            "Gateway": {"status": "HEALTHY", "target_num_replicas": 2,
                        "replicas": [{"state": "RUNNING"}, {"state": "RUNNING"}]},
            "Engine": {"status": "UPSCALING", "target_num_replicas": 2,
                       "replicas": [{"state": "RUNNING"}, {"state": "PENDING_ALLOCATION"}]},
        }}}}
        self.requests: list[dict] = []
        self.lock = threading.Lock()


def _matches(labels: dict, selector: str) -> bool:
    for term in filter(None, selector.split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


def _apply_json_patch(doc: dict, patch: list[dict]) -> dict:
    doc = copy.deepcopy(doc)
    for op in patch:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent = doc
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last = int(parts[-1]) if isinstance(parent, list) else parts[-1]
        if op["op"] == "test":
            if parent[last] != op["value"]:
                raise ValueError(f"test failed at {op['path']}")
        elif op["op"] in ("replace", "add"):
            parent[last] = op["value"]
        else:
            raise ValueError(f"unsupported op {op['op']}")
    return doc


def make_handler(state: FakeKube):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, status: int, body: dict | str) -> None:
            raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _record(self) -> tuple[str, dict, bytes]:
            url = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            query = dict(urllib.parse.parse_qsl(url.query))
            with state.lock:
                state.requests.append({"method": self.command, "path": url.path, "query": query,
                                       "content_type": self.headers.get("Content-Type"), "body": body})
            return url.path, query, body

        def do_GET(self):
            path, query, _ = self._record()
            rayservice = f"/apis/ray.io/v1/namespaces/{NS}/rayservices/"
            if path.startswith(rayservice):
                if path.removeprefix(rayservice) != NAME:
                    return self._send(404, {"kind": "Status", "code": 404, "reason": "NotFound"})
                return self._send(200, state.rayservice)
            if path == f"/api/v1/namespaces/{NS}/pods":
                phase = query.get("fieldSelector", "").removeprefix("status.phase=")
                items = [p for p in state.pods if _matches(p["metadata"]["labels"], query.get("labelSelector", ""))
                         and (not phase or p["status"]["phase"] == phase)]
                return self._send(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})
            if path.startswith(f"/api/v1/namespaces/{NS}/secrets/"):
                name = path.rsplit("/", 1)[1]
                if name not in state.secrets:
                    return self._send(404, {"kind": "Status", "code": 404, "reason": "NotFound"})
                return self._send(200, {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": name},
                                        "data": state.secrets[name]})
            if path == f"/api/v1/namespaces/{NS}/services/{CLUSTER}-head-svc:8265/proxy/api/serve/applications/":
                return self._send(200, state.serve_details)
            return self._send(404, {"kind": "Status", "code": 404, "reason": "NotFound"})

        def do_PATCH(self):
            path, _, body = self._record()
            if path != f"/apis/ray.io/v1/namespaces/{NS}/rayservices/{NAME}":
                return self._send(404, {"kind": "Status", "code": 404})
            if self.headers.get("Content-Type") != "application/json-patch+json":
                return self._send(415, {"kind": "Status", "code": 415})
            try:
                patched = _apply_json_patch(state.rayservice, json.loads(body))
            except (ValueError, KeyError, IndexError) as error:
                return self._send(422, {"kind": "Status", "code": 422, "message": str(error)})
            state.rayservice = patched
            return self._send(200, patched)

    return Handler


@pytest.fixture
def kube():
    state = FakeKube()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    from kubernetes import client

    configuration = client.Configuration(host=f"http://127.0.0.1:{server.server_address[1]}")
    state.clients = Clients.of(client.ApiClient(configuration))
    yield state
    server.shutdown()


# ---- status -------------------------------------------------------------------------------------


def test_status_reports_conditions_apps_replicas_and_pending_gpu_pods(kube):
    status = collect(kube.clients, NS, NAME)
    assert status.service_status == "Running" and status.active_cluster == CLUSTER
    assert [(c["type"], c["status"]) for c in status.conditions] == [("Ready", "True"), ("UpgradeInProgress", "False")]
    assert status.applications == {"mistral-serve": "RUNNING"}
    replicas = {d.name: (d.status, d.running_replicas, d.target_replicas) for d in status.deployments}
    assert replicas == {"Gateway": ("HEALTHY", 2, 2), "Engine": ("UPSCALING", 1, 2)}
    (pending,) = status.pending_pods
    assert (pending.name, pending.group, pending.gpus) == ("gpu-1", "gpu", "1")
    assert "Insufficient nvidia.com/gpu" in pending.reason
    text = format_status(status)
    assert "Engine        UPSCALING   1/2" in text and "pending worker pods: 1" in text
    pods_request = [r for r in kube.requests if r["path"].endswith("/pods")][0]
    assert pods_request["query"] == {"labelSelector": f"ray.io/cluster={CLUSTER},ray.io/node-type=worker",
                                     "fieldSelector": "status.phase=Pending"}


def test_status_without_the_dashboard_still_reports(kube):
    kube.serve_details = None
    kube.rayservice["status"]["activeServiceStatus"]["rayClusterName"] = "other-cluster"
    status = collect(kube.clients, NS, NAME)
    assert status.replicas_source.startswith("unavailable: the Ray dashboard answered 404")
    assert {d.name for d in status.deployments} == {"Gateway", "Engine"}


def test_status_of_a_missing_release_is_a_clear_error(kube):
    with pytest.raises(OpsError, match="no RayService 'nope' in namespace 'llm'"):
        collect(kube.clients, NS, "nope")


def test_cli_status_json(kube, monkeypatch, capsys):
    monkeypatch.setattr(ops_cli, "_clients", lambda args: kube.clients)
    args = build_parser_with_ops().parse_args(["ops", "status", "-n", NS, "--name", NAME, "--json"])
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out)["active_cluster"] == CLUSTER


def build_parser_with_ops():
    """mistral-serve's parser with `ops` registered (as serve/cli.py will do)."""
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    if "ops" not in subparsers.choices:
        ops_cli.register(subparsers)
    return parser


# ---- scale --------------------------------------------------------------------------------------


def _app(rayservice: dict) -> dict:
    return yaml.safe_load(rayservice["spec"]["serveConfigV2"])["applications"][0]


def _deployment(rayservice: dict, name: str) -> dict:
    return {d["name"]: d for d in _app(rayservice)["deployments"]}[name]


def test_scale_engine_patches_bounds_and_gpu_worker_group(kube):
    summary = apply_scale(kube.clients, NS, NAME, ScaleRequest("engine", min_replicas=2, max_replicas=6))
    assert summary == "engine: 1..4 replicas -> 2..6 replicas; GPU worker group maxReplicas -> 6"
    (patch_request,) = [r for r in kube.requests if r["method"] == "PATCH"]
    assert patch_request["path"] == f"/apis/ray.io/v1/namespaces/{NS}/rayservices/{NAME}"
    assert patch_request["content_type"] == "application/json-patch+json"
    ops = json.loads(patch_request["body"])
    assert [o["op"] for o in ops] == ["test", "replace", "replace"]
    autoscaling = _deployment(kube.rayservice, "Engine")["autoscaling_config"]
    assert (autoscaling["min_replicas"], autoscaling["max_replicas"]) == (2, 6)
    assert kube.rayservice["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["maxReplicas"] == 6
    patched = {k: v for k, v in kube.rayservice.items() if k != "status"}
    assert not crd_errors(patched), crd_errors(patched)
    # Only deployments[] changes: the args (hashed into Ray's code version) stay as they were,
    # so Ray Serve applies the new bounds in place (tests/e2e/test_in_place_updates.py).
    before, after = _app(rendered_rayservice()), _app(kube.rayservice)
    assert before["args"] == after["args"]
    {d["name"]: d for d in before["deployments"]}["Engine"]["autoscaling_config"].update(
        min_replicas=2, max_replicas=6)
    assert before == after


def test_scale_within_the_gpu_group_leaves_it_alone(kube):
    summary = apply_scale(kube.clients, NS, NAME, ScaleRequest("gateway", max_replicas=12))
    assert summary == "gateway: 2..8 replicas -> 2..12 replicas"
    ops = json.loads([r for r in kube.requests if r["method"] == "PATCH"][0]["body"])
    assert len(ops) == 2


def test_scale_refuses_invalid_bounds_before_patching(kube):
    with pytest.raises(OpsError, match="invalid"):
        apply_scale(kube.clients, NS, NAME, ScaleRequest("engine", min_replicas=5, max_replicas=3))
    with pytest.raises(OpsError, match="autoscales: use --min/--max"):
        apply_scale(kube.clients, NS, NAME, ScaleRequest("engine", replicas=3))
    assert not [r for r in kube.requests if r["method"] == "PATCH"]


def test_a_concurrent_change_fails_the_patch_instead_of_being_overwritten(kube, monkeypatch):
    from serve.operator_cli import scale

    original = scale.get_rayservice

    def stale(clients, namespace, name):
        rayservice = original(clients, namespace, name)
        # Someone else changes the RayService between our read and our patch.
        kube.rayservice["spec"]["serveConfigV2"] += "\n# changed by someone else\n"
        return rayservice

    monkeypatch.setattr(scale, "get_rayservice", stale)
    with pytest.raises(OpsError, match="changed while scaling"):
        apply_scale(kube.clients, NS, NAME, ScaleRequest("engine", max_replicas=5))
    assert "# changed by someone else" in kube.rayservice["spec"]["serveConfigV2"]


def test_fixed_deployments_scale_with_replicas():
    rayservice = rendered_rayservice()
    serve_config = yaml.safe_load(rayservice["spec"]["serveConfigV2"])
    gateway = {d["name"]: d for d in serve_config["applications"][0]["deployments"]}["Gateway"]
    gateway.pop("autoscaling_config")
    gateway["num_replicas"] = 1
    rayservice["spec"]["serveConfigV2"] = yaml.safe_dump(serve_config)
    patch, summary = scale_patch(rayservice, ScaleRequest("gateway", replicas=3))
    assert summary == "gateway: 1 replicas -> 3 replicas"
    with pytest.raises(OpsError, match="fixed replica count"):
        scale_patch(rayservice, ScaleRequest("gateway", max_replicas=3))


def test_cli_scale_dry_run_patches_nothing(kube, monkeypatch, capsys):
    monkeypatch.setattr(ops_cli, "_clients", lambda args: kube.clients)
    args = build_parser_with_ops().parse_args(["ops", "scale", "-n", NS, "--name", NAME, "--deployment", "engine",
                                               "--max", "8", "--dry-run"])
    assert args.func(args) == 0
    assert "(dry run) engine: 1..4 replicas -> 1..8 replicas; GPU worker group maxReplicas -> 8" in capsys.readouterr().out
    assert not [r for r in kube.requests if r["method"] == "PATCH"]


# ---- keys ---------------------------------------------------------------------------------------


class FakeAdmin(BaseHTTPRequestHandler):
    """The gateway's /admin API as far as ops keys needs it."""

    seen: list[tuple[str, str, str, bytes]] = []

    def log_message(self, *args):
        pass

    def _reply(self, status: int, body: dict) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        FakeAdmin.seen.append((self.command, self.path, self.headers.get("Authorization"), body))
        if self.headers.get("Authorization") != f"Bearer {ADMIN_TOKEN}":
            return self._reply(401, {"error": {"message": "Incorrect or missing admin token."}})
        if self.command == "POST":
            return self._reply(201, {"key": "sk-new", "key_id": "k1", "team": json.loads(body)["team"]})
        if self.command == "DELETE":
            return self._reply(200, {"key_id": self.path.rsplit("/", 1)[1], "team": "search"})
        return self._reply(200, {"data": [{"key_id": "k1", "team": "search", "models": [], "revoked": None}]})

    do_GET = do_POST = do_DELETE = _handle


@pytest.fixture
def admin_server():
    FakeAdmin.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeAdmin)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def test_keys_use_the_admin_token_from_the_release_secret(kube, admin_server):
    api = admin_api(kube.clients, NS, NAME, api_url=f"http://127.0.0.1:{admin_server}")
    created = api.create("search", rpm=60, models=["mistral-7b-instruct"])
    assert created == {"key": "sk-new", "key_id": "k1", "team": "search"}
    method, path, authorization, body = FakeAdmin.seen[0]
    assert (method, path, authorization) == ("POST", "/admin/keys", f"Bearer {ADMIN_TOKEN}")
    assert json.loads(body) == {"team": "search", "rpm": 60, "models": ["mistral-7b-instruct"]}
    assert api.list("search")[0]["key_id"] == "k1"
    assert FakeAdmin.seen[-1][1] == "/admin/keys?team=search"
    assert api.revoke("k1")["key_id"] == "k1"
    secret_reads = [r["path"] for r in kube.requests if "/secrets/" in r["path"]]
    assert secret_reads == [f"/api/v1/namespaces/{NS}/secrets/{NAME}-admin"]


def test_keys_errors_carry_the_api_message(admin_server):
    api = AdminApi(UrlTransport(f"http://127.0.0.1:{admin_server}"), "wrong")
    with pytest.raises(OpsError, match="401 'Incorrect or missing admin token.'"):
        api.list()


def test_keys_go_to_a_serving_worker_over_a_socket(kube, admin_server):
    assert serving_pod(kube.clients, NS, kube.rayservice) == "cpu-0"  # sorted; only pods with ray.io/serve=true
    assert api_port(kube.rayservice) == 8000
    # The port-forward hands SocketTransport a socket; here a plain TCP socket to the fake API.
    api = AdminApi(SocketTransport(lambda: socket.create_connection(("127.0.0.1", admin_server))), ADMIN_TOKEN)
    assert api.revoke("k9") == {"key_id": "k9", "team": "search"}
    assert FakeAdmin.seen[-1][:3] == ("DELETE", "/admin/keys/k9", f"Bearer {ADMIN_TOKEN}")


def test_cli_keys_create_prints_the_key_once(kube, admin_server, monkeypatch, capsys):
    monkeypatch.setattr(ops_cli, "_clients", lambda args: kube.clients)
    args = build_parser_with_ops().parse_args(["ops", "keys", "-n", NS, "--name", NAME, "--api-url",
                                               f"http://127.0.0.1:{admin_server}", "create", "--team", "search"])
    assert args.func(args) == 0
    captured = capsys.readouterr()
    assert captured.out == "sk-new\n" and "key id k1 for team search" in captured.err


def test_cli_errors_exit_1_with_a_message(kube, monkeypatch, capsys):
    monkeypatch.setattr(ops_cli, "_clients", lambda args: kube.clients)
    args = build_parser_with_ops().parse_args(["ops", "status", "-n", NS, "--name", "missing"])
    assert args.func(args) == 1
    assert "error: no RayService 'missing'" in capsys.readouterr().err

