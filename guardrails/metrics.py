"""What the moderation layer records, as an interface: the metric names, help texts and buckets
are defined once, in the platform's catalogue (``serve/metrics.py``), which the app builder injects.

:data:`LABELS` says which labelled series the moderator records and with which label names; the
platform's implementation must agree (a test checks it). :class:`CountingMetrics` records in
memory, for tests, benchmarks and in-process tools that have no metrics exporter.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Protocol

# attribute of ModerationMetrics -> the label names, in the order ``labels()`` takes them.
LABELS: Mapping[str, tuple[str, ...]] = {
    "rail_actions": ("rail", "action", "policy"),  # what each rail did to each checked text
    "verdicts": ("direction", "rail", "action", "policy"),  # final verdicts, with the deciding rail
    "rail_errors": ("rail", "action", "policy"),  # rails that raised or timed out, by on_error's action
    "rail_seconds": ("rail", "policy"),  # latency of one rail check (histogram)
    "check_seconds": ("direction", "policy"),  # latency of all rails of one direction on one text
}


class Series(Protocol):
    """One labelled series (``prometheus_client``'s child API)."""

    def inc(self, amount: float = 1.0) -> None: ...

    def observe(self, amount: float) -> None: ...


class LabelledMetric(Protocol):
    """A metric whose series are picked by label values, in :data:`LABELS` order."""

    def labels(self, *values: str) -> Series: ...


class ModerationMetrics(Protocol):
    """The moderation metrics the moderator records (attributes named as in :data:`LABELS`)."""

    rail_actions: LabelledMetric
    verdicts: LabelledMetric
    rail_errors: LabelledMetric
    rail_seconds: LabelledMetric
    check_seconds: LabelledMetric


class _Counted:
    def __init__(self, totals: defaultdict[tuple, float], counts: Counter, key: tuple) -> None:
        self._totals, self._counts, self._key = totals, counts, key

    def inc(self, amount: float = 1.0) -> None:
        self._totals[self._key] += amount
        self._counts[self._key] += 1

    def observe(self, amount: float) -> None:
        self.inc(amount)


class _CountedMetric:
    def __init__(self, name: str, owner: CountingMetrics) -> None:
        self._name, self._owner = name, owner

    def labels(self, *values: str) -> _Counted:
        if len(values) != len(LABELS[self._name]):
            raise ValueError(f"{self._name} takes labels {LABELS[self._name]}, got {values}")
        return _Counted(self._owner.totals, self._owner.counts, (self._name, *map(str, values)))


class CountingMetrics:
    """:class:`ModerationMetrics` in memory: sums and sample counts per labelled series."""

    # Set in __init__, one per name of LABELS.
    rail_actions: LabelledMetric
    verdicts: LabelledMetric
    rail_errors: LabelledMetric
    rail_seconds: LabelledMetric
    check_seconds: LabelledMetric

    def __init__(self) -> None:
        self.totals: defaultdict[tuple, float] = defaultdict(float)
        self.counts: Counter = Counter()
        for name in LABELS:
            setattr(self, name, _CountedMetric(name, self))

    def value(self, metric: str, **labels: str) -> float:
        """A counter's total (or a histogram's sum) for these labels (all of them, by name)."""
        return self.totals[(metric, *(labels[k] for k in LABELS[metric]))]

    def count(self, metric: str, **labels: str) -> int:
        """How many times the series was recorded (a histogram's sample count)."""
        return self.counts[(metric, *(labels[k] for k in LABELS[metric]))]
