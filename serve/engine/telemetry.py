"""The engine's telemetry: timings the batching thread collects, and the thread that reports them.

The engine thread calls the ``on_*`` methods; they only append to lists under a lock, so the
decode loop pays a few hundred nanoseconds per token. :class:`EngineMetricsReporter`
drains them into the platform's Ray metrics (``serve/metrics.py``) from another thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import metrics
from .types import EngineStats


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


class EngineMetricsReporter:
    """Moves an engine's telemetry into Ray metrics from a background thread.

    The batching thread only appends timings to an :class:`EngineTelemetry` (cheap, no Ray
    calls on the hot path); every ``interval_s`` this thread drains them into the histograms and
    counters and sets the queue gauges from ``stats()``.

    Args:
        telemetry: What the engine records into.
        stats: Returns the engine's current counters (running, waiting).
        batch_slots: The engine's ``max_batch_size``.
        interval_s: Seconds between flushes.
    """

    def __init__(self, telemetry: EngineTelemetry, stats: Callable[[], EngineStats], batch_slots: int,
                 interval_s: float = 1.0) -> None:
        self._telemetry = telemetry
        self._stats = stats
        self._batch_slots = batch_slots
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="engine-metrics", daemon=True)

    def start(self) -> EngineMetricsReporter:
        """Starts the flushing thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Flushes once more and stops the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.flush()
        self.flush()

    @metrics.safely
    def flush(self) -> None:
        """Records everything collected since the previous flush."""
        m = metrics.platform_metrics()
        samples = self._telemetry.drain()
        for value in samples.ttft_s:
            m.observe("mistral_serve_engine_time_to_first_token_seconds", value)
        for value in samples.itl_s:
            m.observe("mistral_serve_engine_inter_token_latency_seconds", value)
        for value in samples.duration_s:
            m.observe("mistral_serve_engine_sequence_duration_seconds", value)
        m.inc("mistral_serve_engine_prompt_tokens_total", samples.prompt_tokens)
        m.inc("mistral_serve_engine_generated_tokens_total", samples.generated_tokens)
        for reason, count in samples.finished.items():
            m.inc("mistral_serve_engine_sequences_total", count, finish_reason=reason)
        stats = self._stats()
        m.set("mistral_serve_engine_waiting_sequences", stats.waiting)
        m.set("mistral_serve_engine_running_sequences", stats.running)
        m.set("mistral_serve_engine_batch_slots", self._batch_slots)
