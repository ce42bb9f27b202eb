"""Timings the batching engine collects for metrics, without any Ray (or Prometheus) code.

The engine thread calls the ``on_*`` methods; they only append to lists under a lock, so the
decode loop pays a few hundred nanoseconds per token. :class:`serve.metrics.EngineMetricsReporter`
drains them into Ray metrics from another thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class TelemetrySamples:
    """What an engine recorded between two drains."""

    ttft_s: list[float] = field(default_factory=list)
    itl_s: list[float] = field(default_factory=list)
    duration_s: list[float] = field(default_factory=list)
    prompt_tokens: int = 0
    generated_tokens: int = 0
    finished: dict[str, int] = field(default_factory=dict)


class EngineTelemetry:
    """Collects per-sequence timings from the engine thread (thread-safe)."""

    # NOTE: bounds memory if nobody drains (e.g. a benchmark that never starts a reporter).
    MAX_SAMPLES = 100_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._samples = TelemetrySamples()

    def on_prefill(self, prompt_tokens: int) -> None:
        """Prompt tokens entered the cache."""
        with self._lock:
            self._samples.prompt_tokens += prompt_tokens

    def on_token(self, since_previous_s: float, first: bool) -> None:
        """A sequence produced a token ``since_previous_s`` after its previous one (or after
        its submission when ``first``)."""
        with self._lock:
            self._samples.generated_tokens += 1
            target = self._samples.ttft_s if first else self._samples.itl_s
            if len(target) < self.MAX_SAMPLES:
                target.append(since_previous_s)

    def on_finish(self, reason: str, duration_s: float) -> None:
        """A sequence finished (``stop``, ``length``, ``cancelled``, ``error``)."""
        with self._lock:
            self._samples.finished[reason] = self._samples.finished.get(reason, 0) + 1
            if len(self._samples.duration_s) < self.MAX_SAMPLES:
                self._samples.duration_s.append(duration_s)

    def drain(self) -> TelemetrySamples:
        """Everything recorded since the previous drain."""
        with self._lock:
            samples, self._samples = self._samples, TelemetrySamples()
        return samples
