"""The platform metrics: definitions, docs table, engine telemetry and the reporter's mapping.

That the metrics really reach Prometheus through Ray's metrics agent is proven end to end in
tests/e2e/test_metrics.py (scrape of Ray's export port) and tests/e2e/test_dashboards_prometheus.py.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path

import pytest

from serve import metrics
from serve.engine.batching import BatchingEngine
from serve.engine.telemetry import EngineMetricsReporter, EngineTelemetry
from serve.engine.types import EngineRequest, EngineStats, SamplingParams

ROOT = Path(__file__).resolve().parents[2]
# Labels Ray Serve adds itself; a metric that declared them would fail to be created in a replica.
RESERVED = {"deployment", "replica", "application", "route"}


def test_every_metric_is_prefixed_typed_and_labelled_consistently():
    names = [spec.name for spec in metrics.SPECS]
    assert len(names) == len(set(names))
    for spec in metrics.SPECS:
        assert spec.name.startswith("mistral_serve_")
        assert metrics.exported_name(spec.name) == "ray_" + spec.name
        assert spec.description and spec.recorded_by
        assert not set(spec.tags) & RESERVED
        if spec.kind == "counter":
            assert spec.name.endswith("_total")
        if spec.kind == "histogram":
            assert spec.name.endswith("_seconds")
            assert list(spec.boundaries) == sorted(set(spec.boundaries)) and spec.boundaries[0] > 0
        else:
            assert spec.boundaries == ()
    # The design's labels, where they apply (deployment comes from Ray Serve).
    tags = {t for spec in metrics.SPECS for t in spec.tags}
    assert {"team", "rail", "status"} <= tags


def test_docs_table_is_generated_from_the_definitions():
    doc = (ROOT / "docs" / "metrics.md").read_text()
    assert metrics.markdown_table() in doc, "regenerate: python -m serve.metrics (see docs/metrics.md)"


def test_metric_objects_are_created_lazily_and_recording_without_ray_is_harmless():
    # No ray.init in this process: Ray's metric objects accept records and drop them.
    metrics.record_request("team-a", "chat", 200, prompt_tokens=3, completion_tokens=0, ttft_s=0.1, e2e_s=0.2)
    metrics.record_request(None, "chat", 401)
    metrics.record_cache("hit", "team-a")
    metrics.record_redis("rejected")
    metrics.record_block("input", "refused", "default", "team-a")
    metrics.record_fail_open("output", "default")
    metrics.moderation_metrics().rail_seconds.labels("self_check", "default").observe(0.002)


class FakeMetrics:
    """Records what the helpers and the reporter send, by metric name."""

    def __init__(self) -> None:
        self.counters: dict[tuple, float] = defaultdict(float)
        self.samples: dict[tuple, list[float]] = defaultdict(list)
        self.gauges: dict[tuple, float] = {}

    @staticmethod
    def _key(name: str, tags: dict) -> tuple:
        spec = metrics.SPECS_BY_NAME[name]
        assert set(tags) == set(spec.tags), (name, tags)
        return (name, *sorted(tags.items()))

    def inc(self, name, value=1.0, **tags):
        assert metrics.SPECS_BY_NAME[name].kind == "counter"
        if value > 0:
            self.counters[self._key(name, tags)] += value

    def observe(self, name, value, **tags):
        assert metrics.SPECS_BY_NAME[name].kind == "histogram"
        self.samples[self._key(name, tags)].append(value)

    def set(self, name, value, **tags):
        assert metrics.SPECS_BY_NAME[name].kind == "gauge"
        self.gauges[self._key(name, tags)] = value


@pytest.fixture
def fake(monkeypatch) -> FakeMetrics:
    fake = FakeMetrics()
    monkeypatch.setattr(metrics, "platform_metrics", lambda: fake)
    return fake


def test_record_request_counts_usage_per_team(fake):
    metrics.record_request("team-a", "chat", 200, prompt_tokens=7, completion_tokens=5, ttft_s=0.05, e2e_s=0.5)
    metrics.record_request(None, "completions", 401)
    assert fake.counters[("mistral_serve_requests_total", ("endpoint", "chat"), ("status", "200"), ("team", "team-a"))] == 1
    assert fake.counters[("mistral_serve_requests_total", ("endpoint", "completions"), ("status", "401"), ("team", "-"))] == 1
    assert fake.counters[("mistral_serve_prompt_tokens_total", ("team", "team-a"))] == 7
    assert fake.counters[("mistral_serve_completion_tokens_total", ("team", "team-a"))] == 5
    assert fake.samples[("mistral_serve_time_to_first_token_seconds", ("endpoint", "chat"), ("team", "team-a"))] == [0.05]
    assert ("mistral_serve_prompt_tokens_total", ("team", "-")) not in fake.counters  # zero is not sent


def test_a_failing_metric_never_fails_the_caller(monkeypatch):
    def broken():
        raise RuntimeError("metrics backend down")

    monkeypatch.setattr(metrics, "platform_metrics", broken)
    metrics.record_cache("miss", "team-a")  # no exception


async def test_engine_telemetry_times_every_token_of_every_sequence(tiny_model, tiny_tokenizer):
    telemetry = EngineTelemetry()
    engine = BatchingEngine(tiny_model, tiny_tokenizer, max_batch_size=2, max_model_len=128,
                            telemetry=telemetry).start()
    try:
        prompts = [(1, 5, 6, 7), (1, 8, 9), (1, 10)]  # three sequences on two slots: one waits

        async def run(ids):
            request = EngineRequest("r", ids, SamplingParams(max_tokens=6, temperature=0, ignore_eos=True))
            return [o async for o in engine.generate(request)]

        await asyncio.gather(*[run(p) for p in prompts])
    finally:
        engine.stop()
    samples = telemetry.drain()
    assert len(samples.ttft_s) == 3 and len(samples.itl_s) == 3 * 5
    assert samples.generated_tokens == 18
    assert samples.prompt_tokens == sum(len(p) for p in prompts)
    assert samples.finished == {"length": 3}
    assert len(samples.duration_s) == 3
    assert all(d >= t for d, t in zip(sorted(samples.duration_s), sorted(samples.ttft_s)))
    assert all(v >= 0 for v in samples.ttft_s + samples.itl_s)
    assert telemetry.drain().generated_tokens == 0  # drained


def test_reporter_moves_telemetry_into_the_engine_metrics(fake):
    telemetry = EngineTelemetry()
    telemetry.on_prefill(12)
    telemetry.on_token(0.2, first=True)
    telemetry.on_token(0.03, first=False)
    telemetry.on_finish("stop", 0.25)
    reporter = EngineMetricsReporter(telemetry, lambda: EngineStats(running=3, waiting=5), batch_slots=16)
    reporter.flush()
    assert fake.samples[("mistral_serve_engine_time_to_first_token_seconds",)] == [0.2]
    assert fake.samples[("mistral_serve_engine_inter_token_latency_seconds",)] == [0.03]
    assert fake.samples[("mistral_serve_engine_sequence_duration_seconds",)] == [0.25]
    assert fake.counters[("mistral_serve_engine_prompt_tokens_total",)] == 12
    assert fake.counters[("mistral_serve_engine_generated_tokens_total",)] == 2
    assert fake.counters[("mistral_serve_engine_sequences_total", ("finish_reason", "stop"))] == 1
    assert fake.gauges == {
        ("mistral_serve_engine_waiting_sequences",): 5,
        ("mistral_serve_engine_running_sequences",): 3,
        ("mistral_serve_engine_batch_slots",): 16,
    }


def test_moderation_metrics_keep_prometheus_clients_api_and_count_fail_open(fake):
    m = metrics.moderation_metrics()
    m.rail_actions.labels("secrets", "blocked", "default").inc()
    m.verdicts.labels("input", "secrets", "blocked", "default").inc()
    m.rail_seconds.labels("secrets", "default").observe(0.002)
    m.check_seconds.labels("input", "default").observe(0.003)
    m.rail_errors.labels("self_check", "allowed", "default").inc()   # failed open
    m.rail_errors.labels("self_check", "blocked", "strict").inc()    # failed closed
    assert fake.counters[("mistral_serve_moderation_rail_actions_total", ("action", "blocked"), ("policy", "default"),
                          ("rail", "secrets"))] == 1
    assert fake.samples[("mistral_serve_moderation_rail_seconds", ("policy", "default"), ("rail", "secrets"))] == [0.002]
    assert fake.samples[("mistral_serve_moderation_check_seconds", ("direction", "input"), ("policy", "default"))] == [0.003]
    fail_open = {k: v for k, v in fake.counters.items() if k[0] == "mistral_serve_moderation_fail_open_total"}
    assert fail_open == {("mistral_serve_moderation_fail_open_total", ("policy", "default"), ("rail", "self_check")): 1}


def test_the_moderation_metrics_are_defined_once_and_match_the_guardrails_interface():
    # guardrails declares what it records (attribute -> label names); the catalogue here defines the
    # metrics. A rename, a new label or a new moderation metric on one side only fails here.
    from dataclasses import fields

    from guardrails.metrics import LABELS

    recorded = metrics.moderation_metrics()
    assert {f.name for f in fields(recorded)} == set(LABELS)
    for attribute, labels in LABELS.items():
        assert getattr(recorded, attribute).spec.tags == labels, attribute
    by_moderation = {spec.name for spec in metrics.SPECS if spec.recorded_by == "Moderation"}
    assert by_moderation == {getattr(recorded, attribute).spec.name for attribute in LABELS}
