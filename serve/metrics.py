"""The platform's own Prometheus metrics: the one module that defines them (the one metrics catalogue; see docs/architecture.md).

Ray Serve replicas are Ray worker processes; a ``prometheus_client`` registry inside one is never
scraped. Metrics are therefore Ray metrics (:mod:`ray.serve.metrics`): each replica records them
and Ray's metrics agent on every node exposes them, beside Ray's own, on the node's metrics export
port (``ray.init(_metrics_export_port=...)``, ``ray start --metrics-export-port``; 8080 in the
chart). Two consequences shape the names:

* Ray's exporter puts its namespace in front of every name, so ``mistral_serve_requests_total``
  here is ``ray_mistral_serve_requests_total`` in Prometheus (see :func:`exported_name`).
* :mod:`ray.serve.metrics` adds ``deployment``, ``replica`` and ``application`` labels itself
  when the metric is recorded inside a replica; those names are reserved and never appear in
  ``tags`` below.

Nothing is created at import time (no import-time side effects): :func:`platform_metrics` creates the
Ray metric objects on first use, once per process. Recording before ``ray.init`` (unit tests,
benchmarks) is a no-op.

The gateway calls :func:`record_request`, :func:`record_cache`, :func:`record_redis`,
:func:`record_block` and :func:`record_fail_open`; the moderation layer records through
:func:`moderation_metrics` (injected by the app builder); the engine deployment's
:class:`serve.engine.telemetry.EngineMetricsReporter` records the engine's. ``docs/metrics.md`` is :func:`markdown_table` (a test keeps it in
sync): ``python -m serve.metrics`` prints it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

logger = logging.getLogger(__name__)

PREFIX = "mistral_serve_"
# Ray's Prometheus exporter namespace (ray.dashboard.modules.reporter.reporter_agent).
RAY_NAMESPACE = "ray_"

# Seconds. TTFT spans a cache hit (milliseconds) to a long prompt queued behind a full batch.
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Seconds. Mistral-7B decodes one step in ~10-40 ms on one GPU; the tiny checkpoint on a CPU
# in ~5-50 ms.
ITL_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)
E2E_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
# Seconds. Offline rails take microseconds, model rails seconds.
MODERATION_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

Kind = Literal["counter", "histogram", "gauge"]
CacheResult = Literal["hit", "miss", "bypass"]
RedisResult = Literal["ok", "error", "rejected"]


@dataclass(frozen=True)
class MetricSpec:
    """One platform metric.

    Attributes:
        name: Name as recorded (``mistral_serve_...``); Prometheus sees :func:`exported_name`.
        kind: counter, histogram or gauge.
        description: Prometheus HELP text.
        tags: Label keys set by the caller (Ray Serve adds deployment, replica, application).
        recorded_by: Which deployment records it (documentation).
        boundaries: Histogram bucket upper bounds.
    """

    name: str
    kind: Kind
    description: str
    tags: tuple[str, ...]
    recorded_by: str
    boundaries: tuple[float, ...] = ()


SPECS: tuple[MetricSpec, ...] = (
    # ---- gateway: one API request ----------------------------------------------------------
    MetricSpec("mistral_serve_requests_total", "counter",
               "API requests by team, endpoint and HTTP status (per-team request usage).",
               ("team", "endpoint", "status"), "Gateway"),
    MetricSpec("mistral_serve_request_duration_seconds", "histogram",
               "End-to-end latency of an API request, from arrival to the last byte of the answer.",
               ("team", "endpoint"), "Gateway", E2E_BUCKETS),
    MetricSpec("mistral_serve_time_to_first_token_seconds", "histogram",
               "Time from a request's arrival to its first generated token (cache hits included).",
               ("team", "endpoint"), "Gateway", TTFT_BUCKETS),
    MetricSpec("mistral_serve_prompt_tokens_total", "counter",
               "Prompt tokens of answered requests (tokens in; per-team token usage).",
               ("team",), "Gateway"),
    MetricSpec("mistral_serve_completion_tokens_total", "counter",
               "Completion tokens of answered requests, cache hits included (tokens out).",
               ("team",), "Gateway"),
    MetricSpec("mistral_serve_cache_requests_total", "counter",
               "Prompt cache outcomes: hit, miss (generated and stored) or bypass (not cacheable, "
               "opted out, or Redis unreachable).", ("team", "result"), "Gateway"),
    MetricSpec("mistral_serve_redis_operations_total", "counter",
               "Redis operations by result: ok, error (failed), rejected (circuit breaker open).",
               ("result",), "Gateway"),
    # ---- moderation ----------------------------------------------------------------------------
    MetricSpec("mistral_serve_moderation_blocks_total", "counter",
               "Inputs or outputs blocked by moderation, by rail, action and policy.",
               ("team", "rail", "action", "policy"), "Gateway, Moderation"),
    MetricSpec("mistral_serve_moderation_fail_open_total", "counter",
               "Moderation checks that could not run and let the content through (fail-open).",
               ("rail", "policy"), "Gateway, Moderation"),
    MetricSpec("mistral_serve_moderation_rail_actions_total", "counter",
               "What each rail did to each checked text (allowed, masked, blocked).",
               ("rail", "action", "policy"), "Moderation"),
    MetricSpec("mistral_serve_moderation_verdicts_total", "counter",
               "Final moderation verdicts per checked text, with the deciding rail (none when allowed).",
               ("direction", "rail", "action", "policy"), "Moderation"),
    MetricSpec("mistral_serve_moderation_rail_errors_total", "counter",
               "Rails that raised or timed out, by the action their on_error applied (allowed: failed "
               "open, blocked: failed closed).", ("rail", "action", "policy"), "Moderation"),
    MetricSpec("mistral_serve_moderation_rail_seconds", "histogram", "Latency of one rail check.",
               ("rail", "policy"), "Moderation", MODERATION_BUCKETS),
    MetricSpec("mistral_serve_moderation_check_seconds", "histogram",
               "Latency of all rails of one direction (input, output) on one text.",
               ("direction", "policy"), "Moderation", MODERATION_BUCKETS),
    # ---- engine: one sequence (one choice) -------------------------------------------------------
    MetricSpec("mistral_serve_engine_time_to_first_token_seconds", "histogram",
               "Engine time from a sequence's submission to its first token (queue + prefill).",
               (), "Engine", TTFT_BUCKETS),
    MetricSpec("mistral_serve_engine_inter_token_latency_seconds", "histogram",
               "Time between consecutive tokens of one sequence in the engine.",
               (), "Engine", ITL_BUCKETS),
    MetricSpec("mistral_serve_engine_sequence_duration_seconds", "histogram",
               "Engine time from a sequence's submission to its last token.",
               (), "Engine", E2E_BUCKETS),
    MetricSpec("mistral_serve_engine_prompt_tokens_total", "counter",
               "Prompt tokens prefilled by the engine.", (), "Engine"),
    MetricSpec("mistral_serve_engine_generated_tokens_total", "counter",
               "Tokens generated by the engine (decode throughput: rate() of this).", (), "Engine"),
    MetricSpec("mistral_serve_engine_sequences_total", "counter",
               "Sequences the engine finished, by finish reason (stop, length, cancelled, error).",
               ("finish_reason",), "Engine"),
    MetricSpec("mistral_serve_engine_waiting_sequences", "gauge",
               "Sequences queued in the engine for a free batch slot (queue depth).", (), "Engine"),
    MetricSpec("mistral_serve_engine_running_sequences", "gauge",
               "Sequences in the engine's running batch.", (), "Engine"),
    MetricSpec("mistral_serve_engine_batch_slots", "gauge",
               "Batch slots of the engine (max_batch_size): running / slots is batch occupancy.",
               (), "Engine"),
)

SPECS_BY_NAME = {spec.name: spec for spec in SPECS}


def exported_name(name: str) -> str:
    """The name Prometheus scrapes from Ray's metrics agent (``ray_`` in front)."""
    return RAY_NAMESPACE + name


class PlatformMetrics:
    """The Ray metric objects of every :data:`SPECS` entry, by name.

    Create it through :func:`platform_metrics` (one per process).
    """

    def __init__(self) -> None:
        from ray.serve import metrics as serve_metrics

        self._metrics: dict[str, Any] = {}
        for spec in SPECS:
            metric: Any
            tags: Any = spec.tags  # Ray types tag_keys as a one-key tuple (tuple[str])
            if spec.kind == "counter":
                metric = serve_metrics.Counter(spec.name, description=spec.description, tag_keys=tags)
            elif spec.kind == "gauge":
                metric = serve_metrics.Gauge(spec.name, description=spec.description, tag_keys=tags)
            else:
                metric = serve_metrics.Histogram(spec.name, description=spec.description,
                                                 boundaries=list(spec.boundaries), tag_keys=tags)
            self._metrics[spec.name] = metric

    def inc(self, name: str, value: float = 1.0, **tags: str) -> None:
        """Adds ``value`` to a counter (zero is skipped: Ray refuses non-positive increments)."""
        if value > 0:
            self._metrics[name].inc(value, tags=tags or None)

    def observe(self, name: str, value: float, **tags: str) -> None:
        """Records one histogram sample."""
        self._metrics[name].observe(value, tags=tags or None)

    def set(self, name: str, value: float, **tags: str) -> None:
        """Sets a gauge."""
        self._metrics[name].set(value, tags=tags or None)


@functools.cache
def platform_metrics() -> PlatformMetrics:
    """This process's metric objects (created on first call)."""
    return PlatformMetrics()


def safely(record: Callable[..., None]) -> Callable[..., None]:
    """Metrics must never fail a request: a recording error is logged once and swallowed."""

    @functools.wraps(record)
    def wrapper(*args, **kwargs) -> None:
        try:
            record(*args, **kwargs)
        except Exception:  # see the docstring
            if not getattr(wrapper, "_warned", False):
                wrapper._warned = True  # type: ignore[attr-defined]
                logger.warning("recording a metric failed", exc_info=True)

    return wrapper


UNAUTHENTICATED_TEAM = "-"


@safely
def record_request(team: str | None, endpoint: str, status: int, prompt_tokens: int = 0,
                   completion_tokens: int = 0, ttft_s: float | None = None, e2e_s: float | None = None) -> None:
    """Counts one finished API request (gateway).

    Args:
        team: The caller's team; ``None`` before authentication succeeded (recorded as ``-``).
        endpoint: ``chat`` or ``completions``.
        status: HTTP status sent (for a stream that failed after it started: 500).
        prompt_tokens: Prompt tokens of the answer (0 when refused).
        completion_tokens: Completion tokens sent (cache hits included).
        ttft_s: Seconds from arrival to the first token, when one was sent.
        e2e_s: Seconds from arrival to the end of the answer.
    """
    team = team or UNAUTHENTICATED_TEAM
    m = platform_metrics()
    m.inc("mistral_serve_requests_total", team=team, endpoint=endpoint, status=str(status))
    m.inc("mistral_serve_prompt_tokens_total", prompt_tokens, team=team)
    m.inc("mistral_serve_completion_tokens_total", completion_tokens, team=team)
    if ttft_s is not None:
        m.observe("mistral_serve_time_to_first_token_seconds", ttft_s, team=team, endpoint=endpoint)
    if e2e_s is not None:
        m.observe("mistral_serve_request_duration_seconds", e2e_s, team=team, endpoint=endpoint)


@safely
def record_cache(result: CacheResult, team: str) -> None:
    """Counts one prompt cache outcome (gateway): ``hit``, ``miss`` or ``bypass``."""
    platform_metrics().inc("mistral_serve_cache_requests_total", team=team, result=result)


@safely
def record_redis(result: RedisResult) -> None:
    """Counts one Redis operation (gateway): ``ok``, ``error`` or ``rejected`` (breaker open)."""
    platform_metrics().inc("mistral_serve_redis_operations_total", result=result)


@safely
def record_block(rail: str, action: str, policy: str, team: str) -> None:
    """Counts one moderation block.

    Args:
        rail: The rail that fired (e.g. ``input``, ``output``, or a rail's own name).
        action: What happened: ``refused`` (input), ``stream_cut`` (output mid-stream), ...
        policy: The team's moderation policy name.
        team: The caller's team.
    """
    platform_metrics().inc("mistral_serve_moderation_blocks_total", team=team, rail=rail, action=action,
                           policy=policy)


@safely
def record_fail_open(rail: str, policy: str) -> None:
    """Counts one moderation check that could not run and let the content through."""
    platform_metrics().inc("mistral_serve_moderation_fail_open_total", rail=rail, policy=policy)


class _Bound:
    """One labelled series of a :class:`LabelledMetric` (``prometheus_client``'s child API)."""

    def __init__(self, metric: LabelledMetric, tags: dict[str, str]) -> None:
        self._metric, self._tags = metric, tags

    def inc(self, amount: float = 1.0) -> None:
        self._metric.record(amount, self._tags)

    def observe(self, amount: float) -> None:
        self._metric.record(amount, self._tags)


class LabelledMetric:
    """A platform metric behind ``prometheus_client``'s ``.labels(...).inc()/.observe()`` API, so
    code written against prometheus_client records Ray metrics instead (which Ray exports).

    Args:
        name: A :data:`SPECS` name; ``labels()`` takes its tags in order.
        also: Called with the tags after every record (e.g. to count fail-open events too).
    """

    def __init__(self, name: str, also: Callable[[dict[str, str]], None] | None = None) -> None:
        self.spec = SPECS_BY_NAME[name]
        self._also = also

    def labels(self, *values: str, **tags: str) -> _Bound:
        """The series with these label values (positional in the spec's order, or by name)."""
        tags = {**dict(zip(self.spec.tags, map(str, values))), **{k: str(v) for k, v in tags.items()}}
        return _Bound(self, tags)

    @safely
    def record(self, amount: float, tags: dict[str, str]) -> None:
        m = platform_metrics()
        if self.spec.kind == "histogram":
            m.observe(self.spec.name, amount, **tags)
        else:
            m.inc(self.spec.name, amount, **tags)
        if self._also is not None:
            self._also(tags)


@dataclass
class ModerationMetrics:
    """The moderation layer's metrics with the attribute names and ``labels()`` API of the
    ``guardrails.metrics.ModerationMetrics`` interface, recorded as Ray metrics (see
    :func:`moderation_metrics`). A rail error whose ``on_error`` let the text through also counts
    as a fail-open event."""

    rail_actions: LabelledMetric
    verdicts: LabelledMetric
    rail_errors: LabelledMetric
    rail_seconds: LabelledMetric
    check_seconds: LabelledMetric


def _fail_open(tags: dict[str, str]) -> None:
    if tags.get("action") == "allowed":
        record_fail_open(tags["rail"], tags["policy"])


@functools.cache
def moderation_metrics() -> ModerationMetrics:
    """The moderation layer's metrics for a replica, implementing ``guardrails.metrics.ModerationMetrics``
    (the app builder injects this factory into the Moderation deployment; prometheus_client metrics
    in a Ray replica are never scraped)."""
    return ModerationMetrics(
        rail_actions=LabelledMetric("mistral_serve_moderation_rail_actions_total"),
        verdicts=LabelledMetric("mistral_serve_moderation_verdicts_total"),
        rail_errors=LabelledMetric("mistral_serve_moderation_rail_errors_total", also=_fail_open),
        rail_seconds=LabelledMetric("mistral_serve_moderation_rail_seconds"),
        check_seconds=LabelledMetric("mistral_serve_moderation_check_seconds"),
    )


def markdown_table() -> str:
    """The metrics table of ``docs/metrics.md``."""
    lines = [
        "| Prometheus name | Type | Labels | Recorded by | Description |",
        "|---|---|---|---|---|",
    ]
    for spec in SPECS:
        name = exported_name(spec.name)
        if spec.kind == "histogram":
            name += " (`_bucket`, `_sum`, `_count`)"
            buckets = ", ".join(f"{b:g}" for b in spec.boundaries)
            description = f"{spec.description} Buckets (s): {buckets}."
        else:
            description = spec.description
        labels = ", ".join(f"`{t}`" for t in spec.tags) or "none"
        lines.append(f"| `{exported_name(spec.name)}`{name.removeprefix(exported_name(spec.name))} "
                     f"| {spec.kind} | {labels} | {spec.recorded_by} | {description} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
