"""Dashboards and alerts against real data: a real Prometheus (Debian's package) scrapes the
session's running stack (Ray's metrics export port) while it serves load, then every dashboard
query must return data and every alert rule must evaluate without error (ops/dashboards/proof.py).

Also proves the platform metrics leave the replicas at all: the engine's series appear in Ray's
Prometheus endpoint with the deployment labels Ray Serve adds.
"""

from __future__ import annotations

import time
import urllib.request

import pytest
from ray import serve

from ops import alerts
from ops.dashboards import proof


@pytest.fixture(scope="module")
def metrics_target(served) -> str:
    """host:port of the Ray node's metrics export port."""
    import ray

    (node,) = [n for n in ray.nodes() if n["Alive"]]
    return f"127.0.0.1:{node['MetricsExportPort']}"


@serve.deployment(ray_actor_options={"num_cpus": 0},
                  autoscaling_config={"min_replicas": 1, "max_replicas": 1})
class AutoscalingProbe:
    """An autoscaling deployment, so that Ray Serve exports its autoscaling decision metric.

    The session's stack uses fixed replica counts (serve/configs/local.yaml); the panel's query is
    per deployment, so any autoscaling deployment proves it returns data.
    """

    def __call__(self) -> str:
        return "ok"


def test_platform_metrics_reach_rays_prometheus_endpoint(served, client, metrics_target):
    client.chat.completions.create(model=served.model, messages=[{"role": "user", "content": "metrics"}], max_tokens=8)
    names = ("ray_mistral_serve_engine_generated_tokens_total", "ray_mistral_serve_engine_inter_token_latency_seconds_bucket",
             "ray_mistral_serve_engine_waiting_sequences", "ray_mistral_serve_engine_batch_slots")
    deadline = time.monotonic() + 40  # Ray's agent exports every 10 s
    while True:
        text = urllib.request.urlopen(f"http://{metrics_target}/metrics", timeout=10).read().decode()
        missing = [name for name in names if f"\n{name}{{" not in text]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert not missing, f"never reached Ray's metrics endpoint: {missing}"
    (line,) = [line for line in text.splitlines() if line.startswith("ray_mistral_serve_engine_generated_tokens_total{")]
    assert 'deployment="Engine"' in line and f'application="{served.app_name}"' in line


def test_every_dashboard_query_returns_data_and_every_alert_evaluates(served, make_key, metrics_target, tmp_path):
    serve.run(AutoscalingProbe.bind(), name="autoscaling-probe", route_prefix="/autoscaling-probe")
    try:
        # Teams of their own: the load never eats into the quota of the other tests' team.
        api_key, limited_key = make_key("proof"), make_key("proof-limited", rpm=1)
        with proof.Prometheus([metrics_target], tmp_path, (alerts.RULES,)) as prom:
            report = proof.prove(prom, proof.http_load(served.root_url, served.model, api_key, limited_key),
                                 timeout_s=90)
            print("\n".join(report.lines()))
            assert [s["value"][1] for s in prom.up()] == ["1"]
    finally:
        serve.delete("autoscaling-probe")
    assert not report.rule_errors(), report.rule_errors()
    assert len(report.rules) == len(alerts.ALERTS)
    assert not [q for q in report.queries if q.error]
    missing = report.missing()
    assert not missing, "no data: " + "; ".join(f"{q.panel}: {q.expr}" for q in missing)
    # Only the KubeRay autoscaler's panel may lack data on a single machine.
    assert {q.source for q in report.queries if not q.series} <= set(proof.NOT_LOCAL) | {"gateway", "moderation"}
