"""The dashboards as code: generated, on the datasource variable, scoped to the namespace and
release variables, rates over $__rate_interval only, and every metric they read defined by
serve/metrics.py, by Ray itself or by the NVIDIA DCGM exporter.

That every query returns data from a real Prometheus scraping a running stack is
tests/e2e/test_dashboards_prometheus.py.
"""

from __future__ import annotations

import json
import re

from ops import dashboards
from serve import metrics

# Ray's metrics the dashboards read (names as exported; checked against Ray's source below).
RAY_METRICS = {
    "ray_serve_autoscaling_target_replicas", "ray_serve_deployment_replica_healthy",
    "ray_serve_autoscaling_desired_replicas", "ray_serve_num_ongoing_requests_at_replicas",
    "ray_serve_deployment_queued_queries", "ray_serve_num_http_requests_total",
    "autoscaler_pending_nodes", "autoscaler_active_nodes",
}
# The DCGM exporter's GPU metrics (its default counters: dcp-metrics-included.csv / default-counters.csv).
DCGM_METRICS = {"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE"}
METRIC = re.compile(r"\b((?:ray|autoscaler)_[a-z_]+)\b")
ANY_METRIC = re.compile(r"\b((?:ray|autoscaler)_[a-z_]+|DCGM_FI_[A-Z_]+)\b(\{[^}]*\})?")
CUMULATIVE = re.compile(r"_(total|bucket|sum|count)$")


def test_dashboard_files_are_generated():
    for uid in dashboards.DASHBOARDS:
        text = dashboards.dashboard_text(uid)
        assert (dashboards.OUT / f"{uid}.json").read_text() == text, "regenerate: python -m ops.dashboards"
        assert (dashboards.CHART_OUT / f"{uid}.json").read_text() == text, "regenerate: python -m ops.dashboards"


def test_every_panel_uses_the_datasource_variable():
    for uid in dashboards.DASHBOARDS:
        board = json.loads(dashboards.dashboard_text(uid))
        variable, namespace, release = board["templating"]["list"]
        assert (variable["type"], variable["name"], variable["query"]) == ("datasource", "datasource", "prometheus")
        # Namespace, then the releases of that namespace, from the datasource chosen.
        assert (namespace["type"], namespace["name"]) == ("query", "namespace")
        assert namespace["query"] == "label_values(ray_serve_deployment_replica_healthy, namespace)"
        assert (release["type"], release["name"]) == ("query", "release")
        assert release["query"] == 'label_values(ray_serve_deployment_replica_healthy{namespace="$namespace"}, release)'
        for query_variable in (namespace, release):
            assert query_variable["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for panel in board["panels"]:
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["targets"]
            for target in panel["targets"]:
                assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_counters_and_histograms_only_through_rate_over_rate_interval():
    """No lifetime averages: a cumulative series is never read raw or over a fixed window."""
    for _, title, query in dashboards.queries():
        for match in METRIC.finditer(query.expr):
            name = match.group(1)
            if CUMULATIVE.search(name):
                following = query.expr[match.end():]
                selector = re.match(r"(\{[^}]*\})?\[\$__rate_interval\]\)", following)
                preceding = query.expr[:match.start()]
                assert selector and preceding.endswith("rate("), f"{title}: {name} outside rate(...[$__rate_interval])"
        assert "[5m]" not in query.expr and "[1h]" not in query.expr
        if "histogram_quantile" in query.expr:
            assert "_bucket" in query.expr and "by (le" in query.expr


def test_every_selector_is_scoped_to_the_namespace_and_release():
    """Two releases in one Prometheus never mix on a dashboard."""
    for _, title, query in dashboards.queries():
        selectors = [(m.group(1), m.group(2) or "") for m in ANY_METRIC.finditer(query.expr)]
        assert selectors, title
        for name, selector in selectors:
            if name.startswith("DCGM_"):
                assert selector.startswith('{namespace="$namespace", pod=~"$release-.*"'), (title, name)
            else:
                assert selector.startswith('{namespace="$namespace", release="$release"'), (title, name)


def test_gpu_panels_read_the_dcgm_exporter():
    panels = {p.title: p for p in dashboards.AUTOSCALING}
    utilisation, memory = panels["GPU utilisation"], panels["GPU memory"]
    assert (utilisation.unit, memory.unit) == ("percent", "mbytes")
    assert "DCGM_FI_DEV_GPU_UTIL" in utilisation.queries[0].expr
    assert ["DCGM_FI_DEV_FB_USED" in memory.queries[0].expr, "DCGM_FI_DEV_FB_FREE" in memory.queries[1].expr] == [True, True]
    used = {m.group(1) for _, _, q in dashboards.queries() for m in ANY_METRIC.finditer(q.expr)}
    assert {name for name in used if name.startswith("DCGM_")} <= DCGM_METRICS
    assert {q.source for p in (utilisation, memory) for q in p.queries} == {"dcgm"}


def test_every_metric_is_defined():
    platform = {metrics.exported_name(spec.name) for spec in metrics.SPECS}
    exported = platform | {f"{metrics.exported_name(s.name)}_bucket" for s in metrics.SPECS if s.kind == "histogram"}
    used = {m.group(1) for _, _, q in dashboards.queries() for m in METRIC.finditer(q.expr)}
    assert used <= exported | RAY_METRICS, used - exported - RAY_METRICS
    for _, title, query in dashboards.queries():
        assert query.source in dashboards.SOURCES, title


def test_ray_metrics_exist_in_this_ray():
    """The Ray metric names are read from the installed Ray's source, not assumed."""
    import ray

    root = __import__("pathlib").Path(ray.__file__).parent
    serve_source = "\n".join(p.read_text() for p in (root / "serve" / "_private").glob("*.py"))
    autoscaler_source = (root / "autoscaler" / "_private" / "prom_metrics.py").read_text()
    for name in RAY_METRICS:
        if name.startswith("ray_serve_"):
            base = name.removeprefix("ray_").removesuffix("_total")
            assert f'"{base}"' in serve_source or f'"{base.replace("_http_", "_{protocol_name}_")}"' in serve_source \
                or "serve_num_{protocol_name}_requests" in serve_source and base == "serve_num_http_requests", name
        else:
            assert f'"{name.removeprefix("autoscaler_")}"' in autoscaler_source, name


def test_both_views_have_the_panels_the_operators_need():
    titles = {uid: [p.title for p in panels] for uid, (_, _, panels) in dashboards.DASHBOARDS.items()}
    autoscaling = " ".join(titles["mistral-serve-autoscaling"]).lower()
    for words in ("target vs running", "queued", "gpu workers pending", "429 and 503", "gpu utilisation", "gpu memory"):
        assert words in autoscaling
    service = " ".join(titles["mistral-serve-service"]).lower()
    for words in ("time to first token", "inter-token", "tokens per second", "cache hit ratio",
                  "blocks by rail", "usage by team"):
        assert words in service
