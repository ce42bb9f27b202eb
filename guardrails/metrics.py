"""Prometheus metrics of the moderation layer (prefix ``mistral_serve_moderation_``).

Metrics live on an instance with its own registry (the process default unless one is given), so
tests and benchmarks can build as many moderators as they like without duplicate registrations.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

# Offline rails take microseconds, model rails seconds: buckets span both.
LATENCY_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0,
)


class ModerationMetrics:
    """Counters and latency histograms by rail, action and policy.

    Attributes:
        rail_actions: ``mistral_serve_moderation_rail_actions_total{rail,action,policy}``: what each
            rail did to each checked text (``allowed``, ``masked``, ``blocked``).
        verdicts: ``mistral_serve_moderation_verdicts_total{direction,rail,action,policy}``: final
            verdicts, with the deciding rail (``none`` when allowed).
        rail_errors: ``mistral_serve_moderation_rail_errors_total{rail,action,policy}``: rails that
            raised or timed out, by the action their ``on_error`` applied (``allowed`` = failed open,
            ``blocked`` = failed closed).
        rail_seconds: ``mistral_serve_moderation_rail_seconds{rail,policy}``: latency of one rail check.
        check_seconds: ``mistral_serve_moderation_check_seconds{direction,policy}``: latency of all
            rails of one direction on one text.
    """

    def __init__(self, registry: CollectorRegistry | None = REGISTRY) -> None:
        kw = {"registry": registry}
        self.rail_actions = Counter(
            "mistral_serve_moderation_rail_actions_total", "What each rail did to each checked text.",
            ["rail", "action", "policy"], **kw,
        )
        self.verdicts = Counter(
            "mistral_serve_moderation_verdicts_total", "Final moderation verdicts, with the deciding rail.",
            ["direction", "rail", "action", "policy"], **kw,
        )
        self.rail_errors = Counter(
            "mistral_serve_moderation_rail_errors_total",
            "Rails that raised or timed out, by the action their on_error setting applied.",
            ["rail", "action", "policy"], **kw,
        )
        self.rail_seconds = Histogram(
            "mistral_serve_moderation_rail_seconds", "Latency of one rail check.",
            ["rail", "policy"], buckets=LATENCY_BUCKETS, **kw,
        )
        self.check_seconds = Histogram(
            "mistral_serve_moderation_check_seconds", "Latency of all rails of one direction on one text.",
            ["direction", "policy"], buckets=LATENCY_BUCKETS, **kw,
        )


def shared_metrics() -> ModerationMetrics:
    """The metrics a replica records: Ray metrics (serve/metrics.py), which Ray's metrics agent
    exports; prometheus_client metrics in a Ray replica are never scraped."""
    from serve.metrics import moderation_metrics

    return moderation_metrics()  # type: ignore[return-value]
