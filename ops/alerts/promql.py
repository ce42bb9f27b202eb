"""Label matchers added to every metric selector of a PromQL expression.

The dashboards scope each query to the ``$namespace`` and ``$release`` variables, and the chart's
copy of the alert rules to its own release, so two releases in one Prometheus never mix. The
``namespace`` label is the pod's namespace (prometheus-operator adds it); ``release`` is the
pod's ``app.kubernetes.io/instance`` label (the chart's PodMonitor copies it).
"""

from __future__ import annotations

import re

# The metric names the dashboards and alerts read: Ray's and the platform's (ray_...), the Ray
# autoscaler's (autoscaler_...) and the NVIDIA DCGM exporter's (DCGM_FI_...).
METRIC = re.compile(r"\b((?:ray|autoscaler)_[a-z_]+|DCGM_FI_[A-Z_]+)\b(\{[^}]*\})?")


def scope(expr: str, matchers: str) -> str:
    """``expr`` with ``matchers`` (e.g. ``namespace="$namespace"``) first in every selector; a
    selector that already names its namespace (the DCGM exporter's, scoped by pod) is left alone."""
    def add(match: re.Match) -> str:
        inner = (match.group(2) or "{}")[1:-1].strip()
        if re.search(r"\bnamespace\s*=", inner):
            return match.group(0)
        return f"{match.group(1)}{{{matchers}{', ' + inner if inner else ''}}}"

    return METRIC.sub(add, expr)
