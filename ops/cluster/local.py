"""A multi-node Ray cluster of ``ray start`` processes on this machine, driven from outside.

Every node is a ``ray start --block`` process in a session of its own, with its own ports and a
marker resource (``msnode_<name>``) that identifies it in the state API. Worker nodes carry
``fake_gpu`` resources that stand in for GPUs: an engine replica that asks for ``fake_gpu: 1``
can only run where one is free, so placement, spreading and capacity are real.

Nothing here calls ``ray.init``: the cluster is driven through the ``ray`` CLI, signals and the
head's dashboard REST API (Serve applications, nodes), so it can be used from a process that runs
its own local Ray (the pytest session) and never touches another user's Ray instance:

* ``--temp-dir`` is private, so ``ray.init()`` elsewhere on the machine never auto-connects here
  (Ray records the "current cluster" address in the temp dir);
* stopping kills this cluster's process groups and any process whose command line names its temp
  dir, never Ray processes by name (``ray stop`` would kill everyone's).

SIGTERM to a node's ``ray start --block`` drains it first (Ray marks the node draining; Serve
starts replacements elsewhere and stops the local replicas gracefully), as a Kubernetes pod
termination does; SIGKILL of its process group is a node crash.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from serve.netutil import free_port, free_range, require_loopback  # noqa: F401 - require_loopback: for traffic.py

FAKE_GPU = "fake_gpu"
# Gateways (and anything else that belongs on CPU nodes) ask for a sliver of this resource, which
# only the head carries, so a worker ("GPU") node failing never takes a gateway with it.
CPU_GROUP = "cpu_group"
NODE_MARKER_PREFIX = "msnode_"
_WORKER_PORTS_PER_NODE = 100
T = TypeVar("T")


class GiveUp(Exception):
    """Raised by a :func:`wait_for` predicate when waiting longer cannot help."""


def wait_for(predicate: Callable[[], T], timeout_s: float, interval_s: float = 0.5, what: str = "condition") -> T:
    """Polls ``predicate`` until it returns something truthy; returns it.

    Raises:
        TimeoutError: still falsy after ``timeout_s``. Exceptions from ``predicate`` count as falsy,
            except :class:`GiveUp`, which ends the wait at once.
    """
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except GiveUp:
            raise
        except Exception as error:  # noqa: BLE001 - e.g. the dashboard is not up yet
            last_error = error
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}{detail}")
        time.sleep(interval_s)


@dataclass(frozen=True)
class NodeSpec:
    """One node: its name, logical CPUs and custom resources.

    Attributes:
        name: Unique name (also the marker resource ``msnode_<name>``).
        num_cpus: Logical CPUs Ray may hand out (may exceed the machine's cores).
        resources: Custom resources, e.g. ``{"fake_gpu": 2}``.
    """

    name: str
    num_cpus: float = 2
    resources: dict[str, float] = field(default_factory=dict)


@dataclass
class Node:
    """A started node."""

    spec: NodeSpec
    process: subprocess.Popen
    log_path: Path
    ports: dict[str, int]

    @property
    def alive(self) -> bool:
        """Whether its ``ray start`` process still runs."""
        return self.process.poll() is None


class LocalRayCluster:
    """A head and worker nodes on this machine.

    Args:
        workdir: Where logs go; the Ray temp dir is a short private path under ``/tmp``.
        head: The head node (runs GCS, the dashboard, the Serve controller and the proxy).
        workers: Worker nodes.
        env: Extra environment for every Ray process (Redis URL, tiny model dir, ...).
        object_store_mb: Object store size per node.
    """

    def __init__(self, workdir: Path, head: NodeSpec, workers: list[NodeSpec], env: dict[str, str] | None = None,
                 object_store_mb: int = 80) -> None:
        self.workdir = Path(workdir)
        self.head_spec = head
        self.worker_specs = list(workers)
        self.env = dict(env or {})
        self.object_store_mb = object_store_mb
        # Short: Ray puts unix sockets under it (path length limit).
        self.temp_dir = Path(f"/tmp/msc-{secrets.token_hex(4)}")
        self.gcs_port = free_port()
        self.dashboard_port = free_port()
        self.nodes: dict[str, Node] = {}
        self._ray = str(Path(sys.executable).with_name("ray"))
        # Ray's token authentication with a token of this cluster's own (never ~/.ray/auth_token,
        # which other Ray users of the machine share): the REST calls below present it.
        self.auth_token = secrets.token_hex(32)
        self._http = httpx.Client(timeout=30, headers={"Authorization": f"Bearer {self.auth_token}"})

    # ---- addresses ---------------------------------------------------------------------------

    @property
    def gcs_address(self) -> str:
        """``host:port`` of the head's GCS (``ray start --address``, ``ray.init(address=...)``)."""
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def dashboard_url(self) -> str:
        """The head's dashboard (Serve REST API, state API)."""
        return f"http://127.0.0.1:{self.dashboard_port}"

    def process_env(self) -> dict[str, str]:
        """Environment of the Ray processes (and of CLI calls against this cluster)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
        env.update({
            "RAY_USAGE_STATS_ENABLED": "0",
            "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": self.auth_token,
        })
        env.update(self.env)
        return env

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout_s: float = 180) -> LocalRayCluster:
        """Starts the head, then the workers; returns when all are registered and alive."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.temp_dir.mkdir(parents=True)
        (self.workdir / "ray-temp-dir").write_text(str(self.temp_dir))
        try:
            self._start_node(self.head_spec, head=True, timeout_s=timeout_s)
            # NOTE: one node at a time: nodes of one machine share the session directory, and two
            # starting together can pick the same socket name (one of them then dies on bind).
            for spec in self.worker_specs:
                self.add_worker(spec, timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def add_worker(self, spec: NodeSpec, timeout_s: float = 120) -> Node:
        """Starts one more worker node and waits until it registers."""
        self.worker_specs = [s for s in self.worker_specs if s.name != spec.name] + [spec]
        return self._start_node(spec, head=False, timeout_s=timeout_s)

    def _start_node(self, spec: NodeSpec, head: bool, timeout_s: float, attempts: int = 3) -> Node:
        """Launches a node and waits until it is up; relaunches it when it dies while starting.

        ``ray start`` gives a node's raylet 30 s to register, and on a busy machine its agents can
        take longer to come up; the node then exits, and another try usually succeeds.
        """
        for attempt in range(1, attempts + 1):
            if head:  # fresh ports: the failed try may still hold them for a moment
                self.gcs_port, self.dashboard_port = free_port(), free_port()
            node = self._launch(spec, head=head)

            # NOTE: wait_for calls up() within this iteration, so the loop variables it reads are current.
            def up() -> bool:
                if not node.alive:  # noqa: B023
                    raise GiveUp(f"node {spec.name} exited during startup; see {node.log_path}")  # noqa: B023
                return self._dashboard_up() if head else spec.name in self.alive_node_names()

            try:
                wait_for(up, timeout_s, what=f"node {spec.name} to start")
                return node
            except GiveUp:
                self._kill(node)
                if attempt == attempts:
                    raise
        raise AssertionError("unreachable")

    def _launch(self, spec: NodeSpec, head: bool) -> Node:
        if spec.name in self.nodes and self.nodes[spec.name].alive:
            raise ValueError(f"node {spec.name} is already running")
        ports = {name: free_port() for name in (
            "node-manager-port", "object-manager-port", "dashboard-agent-listen-port",
            "dashboard-agent-grpc-port", "runtime-env-agent-port", "metrics-export-port")}
        base = free_range(_WORKER_PORTS_PER_NODE)
        resources = {**spec.resources, f"{NODE_MARKER_PREFIX}{spec.name}": 1}
        command = [
            self._ray, "start", "--block", "--disable-usage-stats",
            "--temp-dir", str(self.temp_dir),
            "--node-ip-address", "127.0.0.1",
            "--num-cpus", str(spec.num_cpus),
            "--resources", json.dumps(resources),
            "--object-store-memory", str(self.object_store_mb * 1024 * 1024),
            "--min-worker-port", str(base), "--max-worker-port", str(base + _WORKER_PORTS_PER_NODE - 1),
            *[arg for name, port in ports.items() for arg in (f"--{name}", str(port))],
        ]
        if head:
            command += [
                "--head", "--port", str(self.gcs_port),
                "--include-dashboard", "true", "--dashboard-host", "127.0.0.1",
                "--dashboard-port", str(self.dashboard_port),
                "--ray-client-server-port", str(free_port()),
            ]
        else:
            command += ["--address", self.gcs_address]
        log_path = self.workdir / "logs" / f"{spec.name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            # NOTE: a session of its own: the node's whole process tree can be signalled at once.
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.process_env(),
                                       start_new_session=True, cwd=self.workdir)
        node = Node(spec=spec, process=process, log_path=log_path, ports=ports)
        self.nodes[spec.name] = node
        return node

    def kill_node(self, name: str) -> None:
        """A node crash: SIGKILL to the node's whole process tree (raylet, workers, replicas)."""
        self._kill(self.nodes[name])

    def _kill(self, node: Node) -> None:
        for pid in self._node_pids(node):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            node.process.wait(timeout=10)

    def terminate_node(self, name: str) -> None:
        """What Kubernetes does to a pod: SIGTERM to ``ray start``, which drains the node first."""
        self.nodes[name].process.send_signal(signal.SIGTERM)

    def stop(self, keep_temp_dir: bool = False) -> None:
        """Kills every process of this cluster (and only those) and removes its temp dir."""
        for node in sorted(self.nodes.values(), key=lambda n: n.spec.name == self.head_spec.name):
            for pid in self._node_pids(node):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        # Anything that left the process groups (Ray daemonizes some helpers) names the temp dir.
        for _ in range(3):
            stragglers = _pids_mentioning(str(self.temp_dir))
            if not stragglers:
                break
            for pid in stragglers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)
        for node in self.nodes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.process.wait(timeout=10)
        self._http.close()
        self._save_logs()
        if not keep_temp_dir:
            shutil.rmtree(self.temp_dir, ignore_errors=True)

    def _save_logs(self) -> None:
        """Copies Ray's session logs (raylets, GCS, Serve, replicas) to ``workdir/ray-logs``."""
        logs = self.temp_dir / "session_latest" / "logs"
        if logs.is_dir():
            shutil.copytree(logs, self.workdir / "ray-logs", dirs_exist_ok=True, symlinks=False,
                            ignore=shutil.ignore_patterns("old", "events", "export_events", "nsight", "*.sock"),
                            ignore_dangling_symlinks=True)

    def _node_pids(self, node: Node) -> list[int]:
        """The node's ``ray start`` process and everything in its session."""
        pids = {node.process.pid} if node.alive else set()
        sid = node.process.pid
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, IndexError, ValueError):
                if os.getsid(int(entry.name)) == sid:
                    pids.add(int(entry.name))
        return sorted(pids)

    def __enter__(self) -> LocalRayCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- state -------------------------------------------------------------------------------

    def _get(self, path: str, **params: Any) -> Any:
        response = self._http.get(f"{self.dashboard_url}{path}", params=params)
        response.raise_for_status()
        return response.json()

    def _dashboard_up(self) -> bool:
        return self._http.get(f"{self.dashboard_url}/api/ray/version", timeout=5).status_code == 200

    def ray_nodes(self) -> list[dict]:
        """The state API's nodes (``node_id``, ``state``, ``resources_total``, ...), dead ones included."""
        body = self._get("/api/v0/nodes", limit=1000, detail="true")
        return body["data"]["result"]["result"]

    def node_ids(self) -> dict[str, str]:
        """Name -> node id of the nodes that are alive."""
        names: dict[str, str] = {}
        for node in self.ray_nodes():
            if node.get("state") != "ALIVE":
                continue
            for resource in node.get("resources_total", {}):
                if resource.startswith(NODE_MARKER_PREFIX):
                    names[resource.removeprefix(NODE_MARKER_PREFIX)] = node["node_id"]
        return names

    def alive_node_names(self) -> set[str]:
        """Names of the nodes Ray reports alive."""
        return set(self.node_ids())

    # ---- Serve -------------------------------------------------------------------------------

    def deploy(self, serve_config: dict) -> None:
        """``serve deploy`` through the dashboard's REST API (declarative: replaces the config)."""
        response = self._http.put(f"{self.dashboard_url}/api/serve/applications/", json=serve_config, timeout=60)
        if response.status_code >= 400:
            raise RuntimeError(f"serve deploy failed ({response.status_code}): {response.text[:2000]}")

    def serve_details(self) -> dict:
        """``GET /api/serve/applications/``: applications, deployments, replicas (with node and pid)."""
        return self._get("/api/serve/applications/")

    def replicas(self, app: str, deployment: str, states: tuple[str, ...] = ("RUNNING",)) -> list[dict]:
        """Replicas of one deployment (``replica_id``, ``state``, ``node_id``, ``pid``, ``actor_id``)."""
        apps = self.serve_details().get("applications") or {}
        deployments = (apps.get(app) or {}).get("deployments") or {}
        found = (deployments.get(deployment) or {}).get("replicas") or []
        return [r for r in found if not states or r.get("state") in states]

    def app_status(self, app: str) -> str:
        """The application's status (``RUNNING``, ``DEPLOYING``, ``DEPLOY_FAILED``, ...) or ``""``."""
        apps = self.serve_details().get("applications") or {}
        return (apps.get(app) or {}).get("status", "")

    def wait_app_running(self, app: str, timeout_s: float = 240) -> None:
        """Waits until the application is RUNNING; fails fast on DEPLOY_FAILED."""

        def running() -> bool:
            status = self.app_status(app)
            if status == "DEPLOY_FAILED":
                details = self.serve_details()["applications"][app] or {}
                messages = [details.get("message", "")] + [
                    f"{name}: {d.get('message', '')}" for name, d in (details.get("deployments") or {}).items()
                    if d.get("message")]
                raise AssertionError("deployment failed: " + "\n".join(messages)[-4000:])
            return status == "RUNNING"

        deadline = time.monotonic() + timeout_s
        while not _quietly(running):
            if time.monotonic() > deadline:
                raise TimeoutError(f"application {app} not RUNNING after {timeout_s:.0f}s "
                                   f"(status {_quietly(lambda: self.app_status(app))!r}); logs in {self.workdir}")
            time.sleep(1)

    def metrics_urls(self) -> list[str]:
        """Each live node's Prometheus endpoint (Ray's metrics agent, with the platform's metrics)."""
        return [f"http://127.0.0.1:{n.ports['metrics-export-port']}/metrics" for n in self.nodes.values() if n.alive]


def _quietly(predicate: Callable[[], T]) -> T | None:
    try:
        return predicate()
    except (httpx.HTTPError, KeyError, ValueError):
        return None
    except AssertionError:
        raise


def _pids_mentioning(text: str) -> list[int]:
    """Processes whose command line contains ``text`` (this cluster's temp dir)."""
    found = []
    needle = text.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return found
