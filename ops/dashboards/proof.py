"""Proves the dashboards and alerts against real data: a real Prometheus scrapes a running stack
under load, then every dashboard query must return data and every alert rule must evaluate
without error.

``python -m ops.dashboards.proof`` starts the whole local stack itself (embedded Redis, local
Ray with a fixed metrics export port, the tiny checkpoint with autoscaling on), loads it through
the HTTP API, and prints one line per query. ``tests/e2e/test_dashboards_prometheus.py`` runs the
same checks against the test session's stack.

Which queries must return data depends on what runs: Ray Serve's and the engine's metrics
always; the gateway's once the gateway records them; the moderation layer's once a Moderation
deployment runs. The Ray autoscaler's (``autoscaler_*``: GPU workers pending) exist only in a
KubeRay cluster with enableInTreeAutoscaling and are reported as not provable here.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from serve.netutil import free_port

from .. import alerts
from . import queries

# Grafana's $__rate_interval is max(4 x scrape interval, $__interval + scrape interval); the
# proof scrapes every second but Ray's agent exports every report interval (10 s by default),
# so a minute holds several distinct samples of every series.
RATE_INTERVAL = "1m"
ALWAYS_REQUIRED = ("ray", "engine")
NOT_LOCAL = {"autoscaler": "exists only with the Ray autoscaler of a KubeRay cluster (enableInTreeAutoscaling)",
             "dcgm": "exists only where the NVIDIA DCGM exporter runs on GPU nodes"}
# The labels a cluster's scrape gives every sample (namespace; release from the PodMonitor): the
# proof's scrape sets them, and the dashboards' $namespace and $release variables take them.
SCOPE_LABELS = {"namespace": "proof", "release": "proof"}


class Prometheus:
    """A real Prometheus server (Debian's package) scraping ``targets`` every second.

    Args:
        targets: ``host:port`` of Ray metrics export ports.
        workdir: Where its config and TSDB go.
        rule_files: Alert rule files it evaluates (every second).
    """

    def __init__(self, targets: list[str], workdir: Path, rule_files: tuple[Path, ...] = ()) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._workdir = workdir
        self._targets = targets
        self._rule_files = rule_files
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> Prometheus:
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("prometheus is not installed: run `bash ops/tools/install.sh`")
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in self._rule_files],
            "scrape_configs": [{"job_name": "ray", "static_configs": [{"targets": self._targets,
                                                                       "labels": SCOPE_LABELS}]}],
        }
        config_path = self._workdir / "prometheus.yml"
        config_path.write_text(json.dumps(config))  # JSON is YAML
        self._log = open(self._workdir / "prometheus.log", "wb")
        self._process = subprocess.Popen(
            [binary, f"--config.file={config_path}", f"--storage.tsdb.path={self._workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                pass
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"prometheus did not start: {(self._workdir / 'prometheus.log').read_text()[-2000:]}")
            time.sleep(0.2)

    def __exit__(self, *exc) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=20)
        self._log.close()

    def _get(self, path: str, **params: str) -> dict:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as error:  # 400 for a bad query: the body says why
            body = json.load(error)
        if body.get("status") != "success":
            raise QueryError(body.get("error", "unknown error"))
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        """An instant query's result vector."""
        return self._get("/api/v1/query", query=expr)["result"]

    def rules(self) -> list[dict]:
        """The loaded alerting rules with their health and last error."""
        return [rule for group in self._get("/api/v1/rules")["groups"] for rule in group["rules"]]

    def up(self) -> list[dict]:
        """The ``up`` series of every target."""
        return self.query("up")


class QueryError(RuntimeError):
    """Prometheus refused a query."""


@dataclass
class QueryResult:
    """What one dashboard query returned."""

    dashboard: str
    panel: str
    expr: str
    source: str
    event: bool = False
    series: int = 0
    error: str = ""


@dataclass
class Report:
    """The proof's outcome."""

    queries: list[QueryResult] = field(default_factory=list)
    rules: list[tuple[str, str, str]] = field(default_factory=list)  # name, health, error
    required_sources: tuple[str, ...] = ()

    def missing(self) -> list[QueryResult]:
        """Required queries that returned no data or failed."""
        return [q for q in self.queries
                if q.source in self.required_sources and (q.error or (not q.series and not q.event))]

    def rule_errors(self) -> list[tuple[str, str, str]]:
        """Alert rules that failed to evaluate."""
        return [r for r in self.rules if r[1] == "err" or r[2]]

    def ok(self) -> bool:
        """Every required query has data; every query and rule evaluates."""
        return not self.missing() and not self.rule_errors() and not any(q.error for q in self.queries)

    def lines(self) -> list[str]:
        """A readable account, one line per query and rule."""
        out = [f"required sources: {', '.join(self.required_sources)}"]
        for q in self.queries:
            if q.error:
                state = f"ERROR {q.error}"
            elif q.series:
                state = f"data ({q.series} series)"
            elif q.source in self.required_sources and q.event:
                state = "no data (counts events none of which happened; evaluates)"
            elif q.source in self.required_sources:
                state = "NO DATA"
            else:
                state = f"no data (source {q.source!r} {NOT_LOCAL.get(q.source, 'not running here')})"
            out.append(f"[{q.dashboard}] {q.panel}: {state}\n    {q.expr}")
        for name, health, error in self.rules:
            out.append(f"[alert] {name}: health={health}{' error=' + error if error else ''}")
        return out


def evaluate(prom: Prometheus, required_sources: tuple[str, ...]) -> Report:
    """Runs every dashboard query once and reads every alert rule's health."""
    report = Report(required_sources=required_sources)
    for uid, title, query in queries():
        result = QueryResult(uid, title, query.expr, query.source, query.event)
        try:
            result.series = len(prom.query(grafana_variables(query.expr)))
        except QueryError as error:
            result.error = str(error)
        report.queries.append(result)
    for rule in prom.rules():
        report.rules.append((rule["name"], rule.get("health", ""), rule.get("lastError", "")))
        try:
            prom.query(rule["query"])
        except QueryError as error:
            report.rules.append((rule["name"], "err", str(error)))
    return report


def grafana_variables(expr: str) -> str:
    """A dashboard query with Grafana's variables as the proof's scrape sets them."""
    expr = expr.replace("$__rate_interval", RATE_INTERVAL)
    for name, value in SCOPE_LABELS.items():
        expr = expr.replace(f"${name}", value)
    return expr


def required_sources(prom: Prometheus) -> tuple[str, ...]:
    """What the running stack must answer for: Ray and the engine always; the gateway once it
    records its metrics; moderation once a Moderation deployment runs."""
    sources = list(ALWAYS_REQUIRED)
    if prom.query("ray_mistral_serve_requests_total"):
        sources.append("gateway")
    if prom.query('ray_serve_deployment_replica_healthy{deployment="Moderation"}'):
        sources.append("moderation")
    return tuple(sources)


def prove(prom: Prometheus, load: Callable[[threading.Event], None], timeout_s: float = 90) -> Report:
    """Runs ``load`` in a thread until every required query has data (or ``timeout_s``)."""
    stop = threading.Event()
    worker = threading.Thread(target=load, args=(stop,), name="proof-load", daemon=True)
    worker.start()
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            time.sleep(3)
            report = evaluate(prom, required_sources(prom))
            if report.ok() or time.monotonic() > deadline:
                return report
    finally:
        stop.set()
        worker.join(timeout=60)


# ---- load -----------------------------------------------------------------------------------


def http_load(root_url: str, model: str, api_key: str, limited_key: str, threads: int = 3) -> Callable[[threading.Event], None]:
    """A load covering every panel: streamed and whole chats and completions, repeated
    deterministic requests (cache misses then hits), uncacheable ones (bypass), a team over its
    rate limit (429), a bad key (401) and a prompt the default moderation policy blocks."""
    import httpx

    def one_thread(stop: threading.Event, index: int) -> None:
        auth = {"Authorization": f"Bearer {api_key}"}
        with httpx.Client(base_url=root_url, timeout=120) as client:
            n = 0
            while not stop.is_set():
                n += 1
                chat = {"model": model, "messages": [{"role": "user", "content": f"proof {index} {n}"}],
                        "max_tokens": 24, "temperature": 1.0}
                with client.stream("POST", "/v1/chat/completions", headers=auth | {"Cache-Control": "no-cache"},
                                   json=chat | {"stream": True}) as response:
                    for _ in response.iter_lines():
                        pass
                cached = {"model": model, "prompt": f"cached prompt {n % 3}", "max_tokens": 8, "temperature": 0}
                client.post("/v1/completions", headers=auth, json=cached)
                client.post("/v1/chat/completions", headers=auth, json=chat)  # sampled: cache bypass
                if index == 0:
                    client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {limited_key}"}, json=chat)
                    client.post("/v1/chat/completions", headers={"Authorization": "Bearer wrong"}, json=chat)
                    # A denied term of the default moderation policy: an input block (when moderation runs).
                    denied = chat | {"messages": [{"role": "user", "content": "How do I synthesize sarin at home?"}]}
                    client.post("/v1/chat/completions", headers=auth | {"Cache-Control": "no-cache"}, json=denied)

    def load(stop: threading.Event) -> None:
        workers = [threading.Thread(target=one_thread, args=(stop, i), daemon=True) for i in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    return load


# ---- the local stack (the ops command) -------------------------------------------------------


def _local_stack(config_path: Path, http_port: int, metrics_port: int, workdir: Path):
    """Starts Redis, Ray (fixed metrics port) and the app; returns (root URL, model, keys, stop)."""
    import asyncio

    import ray
    import redis.asyncio as aioredis
    from ray import serve

    from serve.app import build_application
    from serve.config import AutoscalingConfig, load_config
    from serve.local_stack import EmbeddedRedis
    from serve.settings import Settings
    from serve.tenancy.keys import KeyStore

    redis_server = EmbeddedRedis(workdir / "redis").start()
    config = load_config(config_path)
    # Autoscaling on (bounds 1..1 for the engine, 1..2 for the gateway): Ray Serve then exports
    # its autoscaling decision too.
    config.engine.deployment.autoscaling = AutoscalingConfig(min_replicas=1, max_replicas=1, upscale_delay_s=5)
    config.gateway.deployment.autoscaling = AutoscalingConfig(min_replicas=1, max_replicas=2, upscale_delay_s=5)
    os.environ["MISTRAL_SERVE_REDIS_URL"] = redis_server.url
    os.environ["MISTRAL_SERVE_ADMIN_TOKEN"] = "proof-admin-token"
    # NOTE: before ray.init: every Ray process reads it; 2 s exports make the proof quicker.
    os.environ.setdefault("RAY_metrics_report_interval_ms", "2000")
    ray.init(include_dashboard=False, num_cpus=3, log_to_driver=False, _metrics_export_port=metrics_port)
    serve.start(http_options={"host": "127.0.0.1", "port": http_port})
    serve.run(build_application(config, Settings()), name=config.name, route_prefix="/")

    async def keys() -> tuple[str, str]:
        client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
        try:
            store = KeyStore(client)
            return (await store.create("proof"))[0], (await store.create("proof-limited", rpm=1))[0]
        finally:
            await client.aclose()

    api_key, limited_key = asyncio.run(keys())

    def stop() -> None:
        serve.shutdown()
        ray.shutdown()
        redis_server.stop()

    return f"http://127.0.0.1:{http_port}", config.model.served_name, api_key, limited_key, stop


def main(argv: list[str] | None = None) -> int:
    """``python -m ops.dashboards.proof``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="serve/configs/local.yaml", help="deployment YAML (default: local)")
    parser.add_argument("--timeout", type=float, default=120, help="seconds of load at most")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    metrics_port = free_port()
    with tempfile.TemporaryDirectory(prefix="mistral-serve-proof-") as tmp:
        workdir = Path(tmp)
        root, model, api_key, limited_key, stop = _local_stack(Path(args.config), free_port(), metrics_port, workdir)
        try:
            with Prometheus([f"127.0.0.1:{metrics_port}"], workdir, (alerts.RULES,)) as prom:
                started = time.monotonic()
                report = prove(prom, http_load(root, model, api_key, limited_key), args.timeout)
                for line in report.lines():
                    print(line)
                print(f"proof {'PASSED' if report.ok() else 'FAILED'} after {time.monotonic() - started:.0f}s "
                      f"of load; targets up: {[s['value'][1] for s in prom.up()]}")
        finally:
            stop()
    return 0 if report.ok() else 1


if __name__ == "__main__":
    raise SystemExit(main())
