"""Grafana dashboards as code (grafana-foundation-sdk): ``python -m ops.dashboards`` writes
``ops/dashboards/*.json`` and the chart's copies (``helm/mistral-serve/files/dashboards/``,
shipped as ConfigMaps for the Grafana sidecar).

Rules every query follows (DESIGN convention 11, checked by tests/ops/test_dashboards.py):
counters and histograms only through ``rate(...[$__rate_interval])`` (no lifetime averages),
every panel reads the ``$datasource`` variable, and every selector is scoped to the
``$namespace`` and ``$release`` variables (:data:`SCOPE`; the NVIDIA DCGM exporter's GPU metrics
carry the GPU's pod instead, so they match the release's pods by name). Each query also names its ``source`` (what
produces the metric), which the Prometheus proof (``ops/dashboards/proof.py``) uses to tell which
queries a running local stack must answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard as gdash
from grafana_foundation_sdk.builders import prometheus as gprom
from grafana_foundation_sdk.builders import stat as gstat
from grafana_foundation_sdk.builders import timeseries as gts
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm

from ..alerts.promql import scope

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "ops" / "dashboards"
CHART_OUT = ROOT / "helm" / "mistral-serve" / "files" / "dashboards"
DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "[$__rate_interval]"
# Every Ray and platform selector: the release chosen in the dashboard's variables.
SCOPE = 'namespace="$namespace", release="$release"'
# The DCGM exporter's GPU metrics name the pod using the GPU (namespace, pod): the release's Ray
# pods are named after its RayService, which starts with the release name.
GPU_SCOPE = 'namespace="$namespace", pod=~"$release-.*"'
# The series the variables list namespaces and releases from (Serve's controller always exports it).
VARIABLE_SERIES = "ray_serve_deployment_replica_healthy"

# What produces a metric. ``ray``: Ray Serve's controller, proxies and routers; ``engine``: the
# Engine deployment; ``gateway``: the Gateway deployment; ``moderation``: the moderation layer;
# ``autoscaler``: the Ray autoscaler of a KubeRay cluster (enableInTreeAutoscaling); ``dcgm``: the
# NVIDIA DCGM exporter on GPU nodes.
SOURCES = ("ray", "engine", "gateway", "moderation", "autoscaler", "dcgm")


@dataclass(frozen=True)
class Query:
    """One PromQL query of a panel.

    Attributes:
        expr: PromQL (with Grafana's ``$__rate_interval``).
        legend: Grafana legend format.
        source: What produces the metric (one of :data:`SOURCES`).
        event: Counts events a healthy stack may never have (a fail-open, a blocked text): its
            series exist only after the first one, so the proof requires it to evaluate, not to
            return data.
    """

    expr: str
    legend: str
    source: str
    event: bool = False

    def __post_init__(self) -> None:
        # Scoped once, here: the JSON, the tests and the Prometheus proof all see the same query.
        object.__setattr__(self, "expr", scope(self.expr, SCOPE))


@dataclass(frozen=True)
class PanelSpec:
    """One panel: a time series (or a stat), its unit and its queries."""

    title: str
    description: str
    unit: str
    queries: tuple[Query, ...]
    kind: str = "timeseries"
    width: int = 12


def _quantiles(metric: str, by: str, source: str, label: str) -> tuple[Query, ...]:
    group = f"le, {by}" if by else "le"
    prefix = [f"{{{{{by}}}}}"] if by else []
    return tuple(
        Query(f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{RATE})))",
              " ".join(prefix + [label, f"p{int(q * 100)}"]).replace("  ", " ").strip(), source)
        for q in (0.5, 0.99)
    )


AUTOSCALING: tuple[PanelSpec, ...] = (
    PanelSpec(
        "Replicas: target vs running", "Ray Serve's autoscaling target and healthy replicas per deployment.",
        "short", (
            Query("max by (deployment) (ray_serve_autoscaling_target_replicas)", "{{deployment}} target", "ray"),
            Query("sum by (deployment) (ray_serve_deployment_replica_healthy)", "{{deployment}} running", "ray"),
        )),
    PanelSpec(
        "Autoscaler decision (before min/max)", "The policy's raw replica count: above the target means "
        "capped at max_replicas.", "short", (
            Query("max by (deployment) (ray_serve_autoscaling_desired_replicas)", "{{deployment}} desired", "ray"),
        )),
    PanelSpec(
        "Ongoing and queued requests", "Requests at replicas, and requests waiting in callers for a replica.",
        "short", (
            Query("sum by (deployment) (ray_serve_num_ongoing_requests_at_replicas)", "{{deployment}} ongoing", "ray"),
            Query("sum by (deployment) (ray_serve_deployment_queued_queries)", "{{deployment}} queued", "ray"),
        )),
    PanelSpec(
        "Engine batch: waiting, running, slots", "Sequences waiting for a batch slot (queue depth), "
        "running, and the batch slots of all engine replicas.", "short", (
            Query("sum(ray_mistral_serve_engine_waiting_sequences)", "waiting", "engine"),
            Query("sum(ray_mistral_serve_engine_running_sequences)", "running", "engine"),
            Query("sum(ray_mistral_serve_engine_batch_slots)", "slots", "engine"),
        )),
    PanelSpec(
        "GPU workers pending", "Ray worker pods the autoscaler asked for that are not running yet.",
        "short", (
            Query("sum by (NodeType) (autoscaler_pending_nodes)", "{{NodeType}} pending", "autoscaler"),
            Query("sum by (NodeType) (autoscaler_active_nodes)", "{{NodeType}} active", "autoscaler"),
        )),
    PanelSpec(
        "429 and 503 responses", "Quota refusals (429) and capacity refusals (503) per second, at Ray "
        "Serve's proxy.", "reqps", (
            Query(f'sum by (status_code) (rate(ray_serve_num_http_requests_total{{status_code=~"429|503"}}{RATE}))',
                  "{{status_code}}", "ray"),
        )),
    PanelSpec(
        "GPU utilisation", "Share of time each GPU of the release's workers was busy (NVIDIA DCGM exporter).",
        "percent", (
            Query(f"avg by (pod, gpu) (DCGM_FI_DEV_GPU_UTIL{{{GPU_SCOPE}}})", "{{pod}} GPU {{gpu}}", "dcgm"),
        )),
    PanelSpec(
        "GPU memory", "Frame-buffer memory used and free per GPU (weights, KV cache, activations; MiB).",
        "mbytes", (
            Query(f"sum by (pod, gpu) (DCGM_FI_DEV_FB_USED{{{GPU_SCOPE}}})", "{{pod}} GPU {{gpu}} used", "dcgm"),
            Query(f"sum by (pod, gpu) (DCGM_FI_DEV_FB_FREE{{{GPU_SCOPE}}})", "{{pod}} GPU {{gpu}} free", "dcgm"),
        )),
)

SERVICE: tuple[PanelSpec, ...] = (
    PanelSpec("Time to first token", "Arrival at the gateway to the first token (cache hits included).", "s",
              _quantiles("ray_mistral_serve_time_to_first_token_seconds", "", "gateway", "TTFT")),
    PanelSpec("Engine time to first token", "Submission to the engine to the first token (queue + prefill).", "s",
              _quantiles("ray_mistral_serve_engine_time_to_first_token_seconds", "", "engine", "engine TTFT")),
    PanelSpec("Inter-token latency", "Time between consecutive tokens of a sequence in the engine.", "s",
              _quantiles("ray_mistral_serve_engine_inter_token_latency_seconds", "", "engine", "ITL")),
    PanelSpec("End-to-end latency", "Arrival to the end of the answer, per endpoint.", "s",
              _quantiles("ray_mistral_serve_request_duration_seconds", "endpoint", "gateway", "e2e")),
    PanelSpec(
        "Tokens per second", "Prompt tokens prefilled and tokens generated by the engines.", "short", (
            Query(f"sum(rate(ray_mistral_serve_engine_generated_tokens_total{RATE}))", "generated", "engine"),
            Query(f"sum(rate(ray_mistral_serve_engine_prompt_tokens_total{RATE}))", "prefilled", "engine"),
        )),
    PanelSpec(
        "Requests by status", "API requests per second by HTTP status.", "reqps", (
            Query(f"sum by (status) (rate(ray_mistral_serve_requests_total{RATE}))", "{{status}}", "gateway"),
        )),
    PanelSpec(
        "Prompt cache hit ratio", "Hits among cacheable lookups (hits + misses).", "percentunit", (
            Query(f'sum(rate(ray_mistral_serve_cache_requests_total{{result="hit"}}{RATE}))\n'
                  f'  / sum(rate(ray_mistral_serve_cache_requests_total{{result=~"hit|miss"}}{RATE}))',
                  "hit ratio", "gateway"),
        ), kind="stat", width=6),
    PanelSpec(
        "Prompt cache outcomes", "Hits, misses and bypasses per second.", "reqps", (
            Query(f"sum by (result) (rate(ray_mistral_serve_cache_requests_total{RATE}))", "{{result}}", "gateway"),
        ), width=6),
    PanelSpec(
        "Moderation blocks by rail", "Blocked inputs and outputs per second, and fail-open events.", "reqps", (
            Query(f"sum by (rail) (rate(ray_mistral_serve_moderation_blocks_total{RATE}))", "{{rail}} blocked",
                  "moderation"),
            Query(f"sum by (rail) (rate(ray_mistral_serve_moderation_fail_open_total{RATE}))", "{{rail}} fail-open",
                  "moderation", event=True),
        )),
    PanelSpec("Moderation rail latency", "Latency of one rail check, per rail.", "s",
              _quantiles("ray_mistral_serve_moderation_rail_seconds", "rail", "moderation", "rail")),
    PanelSpec(
        "Usage by team: tokens", "Prompt and completion tokens per second by team.", "short", (
            Query(f"sum by (team) (rate(ray_mistral_serve_prompt_tokens_total{RATE}))", "{{team}} prompt", "gateway"),
            Query(f"sum by (team) (rate(ray_mistral_serve_completion_tokens_total{RATE}))", "{{team}} completion",
                  "gateway"),
        )),
    PanelSpec(
        "Usage by team: requests", "API requests per second by team.", "reqps", (
            Query(f"sum by (team) (rate(ray_mistral_serve_requests_total{RATE}))", "{{team}}", "gateway"),
        )),
    PanelSpec(
        "Engine sequences by finish reason", "Sequences finished per second: stop, length, cancelled, error.",
        "short", (
            Query(f"sum by (finish_reason) (rate(ray_mistral_serve_engine_sequences_total{RATE}))",
                  "{{finish_reason}}", "engine"),
        )),
)

DASHBOARDS: dict[str, tuple[str, str, tuple[PanelSpec, ...]]] = {
    "mistral-serve-autoscaling": ("mistral-serve: autoscaling", "Replicas, queues, pending GPU workers, "
                                  "refusals.", AUTOSCALING),
    "mistral-serve-service": ("mistral-serve: service", "Latency, throughput, cache, moderation and usage "
                              "per team.", SERVICE),
}


def _panel(spec: PanelSpec, panel_id: int):
    builder = gstat.Panel() if spec.kind == "stat" else gts.Panel()
    builder = builder.id(panel_id).title(spec.title).description(spec.description).unit(spec.unit).datasource(DATASOURCE)
    builder = builder.height(8).span(spec.width)
    for index, query in enumerate(spec.queries):
        builder = builder.with_target(
            gprom.Dataquery().expr(query.expr).legend_format(query.legend).ref_id(chr(ord("A") + index))
            .datasource(DATASOURCE)
        )
    return builder


def _label_variable(name: str, label: str, series: str):
    """A variable listing the values of label ``name`` on ``series`` (refreshed with the time range)."""
    return (
        gdash.QueryVariable(name).label(label).datasource(DATASOURCE)
        .query(f"label_values({series}, {name})").refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(
            dm.VariableSort.ALPHABETICAL_ASC)
    )


def build(uid: str) -> dict:
    """One dashboard as Grafana JSON (a plain dict)."""
    title, description, panels = DASHBOARDS[uid]
    builder = (
        gdash.Dashboard(title).uid(uid).description(description).tags(["mistral-serve", "ray-serve"])
        .refresh("30s").time("now-1h", "now").timezone("browser").editable()
        .with_variable(gdash.DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
        .with_variable(_label_variable("namespace", "Namespace", VARIABLE_SERIES))
        .with_variable(_label_variable("release", "Release", f'{VARIABLE_SERIES}{{namespace="$namespace"}}'))
    )
    for panel_id, spec in enumerate(panels, start=1):
        builder = builder.with_panel(_panel(spec, panel_id))
    return json.loads(json.dumps(builder.build(), cls=JSONEncoder))


def dashboard_text(uid: str) -> str:
    """A dashboard's JSON as written."""
    return json.dumps(build(uid), indent=2, sort_keys=True) + "\n"


def queries() -> list[tuple[str, str, Query]]:
    """Every (dashboard uid, panel title, query)."""
    return [(uid, spec.title, query) for uid, (_, _, panels) in DASHBOARDS.items()
            for spec in panels for query in spec.queries]


def write() -> list[Path]:
    """Writes every dashboard to ops/dashboards/ and the chart."""
    written = []
    for uid in DASHBOARDS:
        for folder in (OUT, CHART_OUT):
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{uid}.json"
            path.write_text(dashboard_text(uid))
            written.append(path)
    return written
