"""Alert rules as code: ``python -m ops.alerts`` writes ``ops/alerts/rules.yaml`` and the chart's
copy (``helm/mistral-serve/files/alerts/rules.yaml``, shipped as a PrometheusRule).

Every alert has a runbook in ``ops/runbooks/`` and unit tests in ``ops/alerts/tests.yaml``
(``promtool test rules``); ``tests/ops/test_alerts.py`` checks all three stay together.

Metric names are the exported ones (``ray_`` + the names in ``serve/metrics.py``, and Ray Serve's).
Alerts use fixed ``[5m]`` windows: ``$__rate_interval`` exists only in Grafana.

Scoping: every aggregation keeps ``namespace`` and ``release`` (:data:`SCOPE`), so an alert fires
per release and two releases in one Prometheus never mix. The chart's copy also carries label
matchers for its own release in every selector (placeholders the PrometheusRule template fills
in), so each release's PrometheusRule alerts only on its own pods.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from .promql import scope

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "ops" / "alerts" / "rules.yaml"
CHART_RULES = ROOT / "helm" / "mistral-serve" / "files" / "alerts" / "rules.yaml"
RUNBOOKS = ROOT / "ops" / "runbooks"

SCOPE = "namespace, release"
BY_DEPLOYMENT = f"{SCOPE}, application, deployment"
# Replaced by the chart's PrometheusRule template with the release's namespace and name.
CHART_MATCHERS = 'namespace="__RELEASE_NAMESPACE__", release="__RELEASE_NAME__"'


@dataclass(frozen=True)
class Alert:
    """One alerting rule."""

    name: str
    expr: str
    duration: str
    severity: str
    summary: str
    description: str
    runbook: str

    def rule(self, matchers: str = "") -> dict:
        """The rule; ``matchers`` are added to every selector of its expression."""
        return {
            "alert": self.name,
            "expr": scope(self.expr, matchers) if matchers else self.expr,
            "for": self.duration,
            "labels": {"severity": self.severity, "service": "mistral-serve"},
            "annotations": {
                "summary": self.summary,
                "description": self.description,
                "runbook": f"ops/runbooks/{self.runbook}.md",
            },
        }


ALERTS: tuple[Alert, ...] = (
    Alert(
        name="MistralServeHighErrorRate",
        expr=(
            f'sum by ({SCOPE}) (rate(ray_mistral_serve_requests_total{{status=~"5.."}}[5m]))\n'
            f"  / sum by ({SCOPE}) (rate(ray_mistral_serve_requests_total[5m])) > 0.05"
        ),
        duration="5m",
        severity="critical",
        summary="More than 5% of API requests fail with a 5xx",
        description="{{ $value | humanizePercentage }} of API requests returned a 5xx over the last 5 minutes.",
        runbook="high-error-rate",
    ),
    Alert(
        name="MistralServeTTFTHigh",
        expr=(
            "histogram_quantile(0.99,\n"
            f"  sum by (le, {SCOPE}) (rate(ray_mistral_serve_time_to_first_token_seconds_bucket[5m]))) > 5"
        ),
        duration="10m",
        severity="warning",
        summary="p99 time to first token above 5 s",
        description="p99 time to first token is {{ $value | humanizeDuration }} (threshold 5s) for 10 minutes.",
        runbook="ttft-high",
    ),
    Alert(
        name="MistralServeQueueingAtMaxReplicas",
        # The autoscaler's raw decision above its bounded target means it is capped at
        # max_replicas; requests still waiting in the engines means the cap hurts.
        expr=(
            f"(max by ({BY_DEPLOYMENT}) (ray_serve_autoscaling_desired_replicas)\n"
            f"   > max by ({BY_DEPLOYMENT}) (ray_serve_autoscaling_target_replicas))\n"
            f"and on ({BY_DEPLOYMENT})\n"
            f"  (sum by ({BY_DEPLOYMENT}) (ray_mistral_serve_engine_waiting_sequences) > 0)"
        ),
        duration="10m",
        severity="warning",
        summary="Requests queue while the engine is at its maximum replicas",
        description=(
            "{{ $labels.deployment }} wants more replicas than max_replicas allows and requests have "
            "been waiting for a batch slot for 10 minutes."
        ),
        runbook="queueing-at-max-replicas",
    ),
    Alert(
        name="MistralServeReplicasBelowMin",
        # The autoscaling target never goes below min_replicas (and is num_replicas without
        # autoscaling), so fewer healthy replicas than the target covers "below min".
        expr=(
            f"max by ({BY_DEPLOYMENT}) (ray_serve_autoscaling_target_replicas)\n"
            f"  - sum by ({BY_DEPLOYMENT}) (ray_serve_deployment_replica_healthy) > 0"
        ),
        duration="15m",
        severity="critical",
        summary="Fewer healthy replicas than the deployment's minimum/target",
        description=(
            "{{ $labels.deployment }} has {{ $value }} fewer healthy replicas than its target "
            "(never below min_replicas) for 15 minutes."
        ),
        runbook="replicas-below-min",
    ),
    Alert(
        name="MistralServeRedisUnreachable",
        expr=(
            f'sum by ({SCOPE}) (rate(ray_mistral_serve_redis_operations_total{{result!="ok"}}[5m]))\n'
            f"  / sum by ({SCOPE}) (rate(ray_mistral_serve_redis_operations_total[5m])) > 0.5"
        ),
        duration="2m",
        severity="critical",
        summary="The gateways cannot reach Redis",
        description=(
            "{{ $value | humanizePercentage }} of Redis operations failed or were short-circuited: "
            "quotas, keys and the prompt cache are degraded."
        ),
        runbook="redis-unreachable",
    ),
    Alert(
        name="MistralServeModerationFailOpen",
        expr=f"sum by ({SCOPE}, rail, policy) (increase(ray_mistral_serve_moderation_fail_open_total[5m])) > 0",
        duration="0m",
        severity="critical",
        summary="Moderation let content through unchecked (fail-open)",
        description=(
            "{{ $labels.rail }} checks of policy {{ $labels.policy }} could not run and let content "
            "through in the last 5 minutes."
        ),
        runbook="moderation-fail-open",
    ),
)


def rules(matchers: str = "") -> dict:
    """The rule file (Prometheus rule-file format; the PrometheusRule's spec)."""
    return {"groups": [{"name": "mistral-serve", "rules": [alert.rule(matchers) for alert in ALERTS]}]}


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings (expressions) as literal blocks."""


_Dumper.add_representer(
    str, lambda dumper, text: dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None)
)


def rules_text(chart: bool = False) -> str:
    """The rule file as written: ops/alerts/rules.yaml, or the chart's copy (``chart``), whose
    selectors match the release's namespace and name (placeholders the template fills in)."""
    header = "# Generated by `python -m ops.alerts` from ops/alerts/__init__.py; do not edit.\n"
    return header + yaml.dump(rules(CHART_MATCHERS if chart else ""), Dumper=_Dumper, sort_keys=False, width=120)


def write() -> list[Path]:
    """Writes the rule file and the chart's copy."""
    for path, chart in ((RULES, False), (CHART_RULES, True)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rules_text(chart))
    return [RULES, CHART_RULES]
