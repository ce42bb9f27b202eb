"""The whole application on a local multi-node cluster: Redis, the checkpoint, Ray, Serve, a key.

:class:`ClusterStack` is what ``python -m ops.cluster up``, the autoscaling recorder, the soak
and ``tests/cluster`` share: it starts an embedded Redis, a head (CPU group: Serve controller,
proxy, gateways) and worker nodes with fake GPUs (engine replicas), deploys the application
through the Serve REST API (``mistral-serve ray-config``'s shape, the same path as ``serve
deploy``), waits until ``/readyz`` answers and creates an API key without limits.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import secrets
from pathlib import Path

import httpx

from serve.config import AppConfig, load_config
from serve.local_stack import EmbeddedRedis
from serve.serve_config import ray_serve_config

from .driver import Driver
from .local import CPU_GROUP, FAKE_GPU, LocalRayCluster, NodeSpec, free_port, wait_for

CLUSTER_CONFIG = Path(__file__).with_name("cluster.yaml")
ENGINE = "Engine"
# Replica states that take requests: a replica on a draining node serves until it is stopped.
SERVING = ("RUNNING", "PENDING_MIGRATION")


def create_api_key(redis_url: str, team: str, **options) -> str:
    """Creates an API key in Redis (``mistral-serve keys create``); rpm/tpm 0 means unlimited."""
    import redis.asyncio as aioredis

    from serve.tenancy.keys import KeyStore

    async def create() -> str:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            key, _ = await KeyStore(client).create(team, **options)
            return key
        finally:
            await client.aclose()

    # A thread of its own: the caller may already run an event loop.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, create()).result()


def worker_name(index: int) -> str:
    """Name of the index-th worker node (``gpu1``, ``gpu2``, ...)."""
    return f"gpu{index}"


class ClusterStack:
    """The application deployed on a local head + workers cluster.

    Args:
        workdir: Logs, Redis data, the driver log.
        config: The deployment config (default ``ops/cluster/cluster.yaml``).
        tiny_model_dir: The tiny checkpoint (built there if missing).
        workers: Worker nodes, each with ``fake_gpus`` fake GPUs and ``worker_cpus`` logical CPUs.
        drain_timeout_s: How long a node given SIGTERM drains before it stops
            (``RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S``; the chart's preStop plays this role).
            Default: the engine's graceful shutdown timeout plus 60 s for a replacement to start.
    """

    def __init__(self, workdir: Path, config: AppConfig | None = None, tiny_model_dir: Path | None = None,
                 workers: int = 2, fake_gpus: int = 2, worker_cpus: float = 2, head_cpus: float = 2,
                 drain_timeout_s: float | None = None) -> None:
        self.workdir = Path(workdir)
        self.config = config or load_config(CLUSTER_CONFIG)
        self.tiny_model_dir = Path(tiny_model_dir or self.workdir / "tiny-mistral")
        self.fake_gpus = fake_gpus
        self.worker_cpus = worker_cpus
        self.redis = EmbeddedRedis(self.workdir / "redis")
        grace = self.config.engine.deployment.graceful_shutdown_timeout_s
        self.env = {
            "MISTRAL_SERVE_TINY_MODEL_DIR": str(self.tiny_model_dir),
            "MISTRAL_SERVE_ADMIN_TOKEN": secrets.token_urlsafe(16),
            # Long enough for replacements to start elsewhere AND the node's replicas to finish
            # their requests: Serve stops a migrating replica once its replacement runs, or
            # when the node's deadline leaves only its graceful shutdown timeout.
            "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": str(drain_timeout_s or grace + 60),
            # A replica fails its health check only when its requests cannot progress (engine
            # thread dead, model hung): waiting out its graceful shutdown would only delay the
            # retry of those requests on a healthy replica.
            "RAY_SERVE_FORCE_STOP_UNHEALTHY_REPLICAS": "1",
        }
        self.cluster = LocalRayCluster(
            self.workdir,
            head=NodeSpec("head", head_cpus, {CPU_GROUP: 1}),
            workers=[NodeSpec(worker_name(i + 1), worker_cpus, {FAKE_GPU: fake_gpus}) for i in range(workers)],
            env=self.env,
        )
        self.http_port = free_port()
        self.api_key = ""
        self._driver: Driver | None = None
        self._next_worker = workers + 1

    # ---- addresses ---------------------------------------------------------------------------

    @property
    def root_url(self) -> str:
        """The Serve proxy on the head."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def base_url(self) -> str:
        """The OpenAI base URL."""
        return f"{self.root_url}/v1"

    @property
    def app(self) -> str:
        """The Serve application name."""
        return self.config.name

    @property
    def model(self) -> str:
        """The served model name."""
        return self.config.model.served_name

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self) -> ClusterStack:
        """Starts everything and returns once the API answers (stops it all on failure)."""
        from serve.tiny_model import make_tiny_model

        try:
            if self.config.model.tiny and not (self.tiny_model_dir / "config.json").is_file():
                make_tiny_model(self.tiny_model_dir)
            self.redis.start()
            self.env["MISTRAL_SERVE_REDIS_URL"] = self.redis.url
            self.cluster.env = dict(self.env)
            self.cluster.start()
            self.deploy(self.config)
            self.wait_ready()
            self.api_key = create_api_key(self.redis.url, "cluster", rpm=0, tpm=0)
        except BaseException:
            self.stop()
            raise
        return self

    def serve_config(self, config: AppConfig) -> dict:
        """The Serve config file of ``config`` on this cluster (what ``serve deploy`` takes)."""
        config = copy.deepcopy(config)
        config.http.host, config.http.port = "127.0.0.1", self.http_port
        serve_config = ray_serve_config(config)
        # Every node of this cluster is on one machine: only the head's proxy can bind the port.
        serve_config["proxy_location"] = "HeadOnly"
        return serve_config

    def deploy(self, config: AppConfig, timeout_s: float = 300) -> None:
        """Deploys (or updates) the application and waits until it is RUNNING."""
        self.cluster.deploy(self.serve_config(config))
        self.config = copy.deepcopy(config)
        self.cluster.wait_app_running(self.app, timeout_s)

    def wait_ready(self, timeout_s: float = 120) -> None:
        """Waits until ``/readyz`` says the engine generates."""
        wait_for(lambda: httpx.get(f"{self.root_url}/readyz", timeout=30).status_code == 200, timeout_s,
                 interval_s=1, what="/readyz")

    def add_worker(self) -> str:
        """Starts one more worker node (same shape); returns its name."""
        name = worker_name(self._next_worker)
        self._next_worker += 1
        self.cluster.add_worker(NodeSpec(name, self.worker_cpus, {FAKE_GPU: self.fake_gpus}))
        return name

    def driver(self) -> Driver:
        """A Ray driver on this cluster (started on first use), for Serve handle calls."""
        if self._driver is None:
            self._driver = Driver(self.cluster.gcs_address, self.cluster.process_env(),
                                  self.workdir / "logs" / "driver.log", app=self.app)
        return self._driver

    def stop(self) -> None:
        """Stops the driver, the cluster and Redis."""
        if self._driver is not None:
            self._driver.close()
            self._driver = None
        self.cluster.stop()
        self.redis.stop()

    def __enter__(self) -> ClusterStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- state -------------------------------------------------------------------------------

    def engine_replicas(self, states: tuple[str, ...] = ("RUNNING",)) -> list[dict]:
        """Engine replicas with a ``node`` name added (``gpu1``, ...; ``?`` if unknown)."""
        names = {node_id: name for name, node_id in self.cluster.node_ids().items()}
        replicas = self.cluster.replicas(self.app, ENGINE, states)
        for replica in replicas:
            replica["node"] = names.get(replica.get("node_id"), "?")
        return replicas

    def replica_counts(self) -> dict[str, int]:
        """Engine replicas by state (RUNNING, STARTING, STOPPING, ...)."""
        counts: dict[str, int] = {}
        for replica in self.cluster.replicas(self.app, ENGINE, states=()):
            counts[replica["state"]] = counts.get(replica["state"], 0) + 1
        return counts

    def running_by_node(self) -> dict[str, int]:
        """Serving engine replicas (RUNNING, or PENDING_MIGRATION off a draining node) per node."""
        counts: dict[str, int] = {}
        for replica in self.engine_replicas(SERVING):
            counts[replica["node"]] = counts.get(replica["node"], 0) + 1
        return counts
