"""Access records and trace spans of real requests through the gateway app (fake engine, real
Redis, the offline moderator in process); the replica's JSON log file is proven in tests/e2e."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from serve.config import TenancyConfig, TracingConfig
from serve.engine.types import EngineOutput
from serve.gateway.adapter import EngineAdapter
from serve.gateway.moderation_stage import ModerationStage
from serve.gateway.pipeline import Pipeline, Tenancy
from serve.gateway.routes import create_app
from serve.redis_gate import RedisGate
from serve.tenancy.auth import Authenticator
from serve.tenancy.keys import KeyStore
from serve.tenancy.quotas import QuotaManager
from serve.tenancy.usage import UsageRecorder
from serve.tracing import build_tracing


class FakeEngine:
    """Emits "Hel", "lo" (one token each), then stops."""

    async def generate(self, request):
        yield EngineOutput(text="Hel", num_tokens=1)
        yield EngineOutput(text="lo", num_tokens=1, finish_reason="stop")

    async def ready(self):
        return True

PROMPT = "please summarise the quarterly numbers"


@pytest.fixture
async def gateway(tiny_encoder, redis_url, offline):
    """The app with tracing into an in-memory exporter; yields (client, exporter, key id, pipeline)."""
    gate = RedisGate(redis_url)
    config = TenancyConfig()
    key, info = await KeyStore(gate.client).create("observed", rpm=100, tpm=100_000)
    tenancy = Tenancy(Authenticator(KeyStore(gate.client), gate, config), QuotaManager(gate, config),
                      UsageRecorder(gate), cache=None)
    exporter = InMemorySpanExporter()
    pipeline = Pipeline(EngineAdapter(tiny_encoder, 128, 4), FakeEngine(), "m", "m@test", tenancy,
                        moderation=ModerationStage(offline, offline.policies.infos(), "default"),
                        tracing=build_tracing(TracingConfig(enabled=True), exporter=exporter))
    transport = httpx.ASGITransport(app=create_app(pipeline, started_at=0), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test",
                                 headers={"Authorization": f"Bearer {key}"}) as client:
        yield client, exporter, info.key_id, pipeline
    await gate.close()


@pytest.mark.parametrize("stream", [False, True])
async def test_each_request_has_one_access_record_with_team_tokens_and_latencies(gateway, serve_log, stream):
    client, _, key_id, _ = gateway
    body = {"model": "m", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 5, "stream": stream}
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    (line,) = serve_log()
    assert line["event"] == "access"
    assert (line["method"], line["path"], line["status"]) == ("POST", "/v1/chat/completions", 200)
    assert (line["team"], line["key_id"], line["model"], line["stream"]) == ("observed", key_id, "m", stream)
    assert line["prompt_tokens"] > 0 and line["completion_tokens"] == 2 and line["finish_reasons"] == ["stop"]
    assert line["latency_ms"] >= line["ttft_ms"] > 0
    assert line["cache"] == "bypass" and line["completion_id"].startswith("chatcmpl-")
    assert PROMPT not in json.dumps(line) and "Hello" not in json.dumps(line)  # no text unless asked


async def test_a_refused_request_is_logged_with_its_status_and_code(gateway, serve_log):
    client, _, _, _ = gateway
    response = await client.post("/v1/chat/completions", json={"model": "nope", "messages": []})
    assert response.status_code in (400, 404)
    (line,) = serve_log()
    assert line["status"] == response.status_code and line["error_code"] == response.json()["error"]["code"]
    unauthenticated = await client.get("/v1/models", headers={"Authorization": "Bearer wrong"})
    assert unauthenticated.status_code == 401
    assert serve_log()[-1]["error_code"] == "invalid_api_key" and "team" not in serve_log()[-1]


async def test_every_pipeline_stage_is_a_child_span_of_the_request(gateway):
    client, exporter, _, pipeline = gateway
    body = {"model": "m", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 5, "stream": True}
    assert (await client.post("/v1/chat/completions", json=body)).status_code == 200
    await asyncio.gather(*pipeline._background)  # the account stage runs after the response
    spans = {s.name.removeprefix("mistral_serve."): s for s in exporter.get_finished_spans()}
    assert set(spans) == {"request", "authenticate", "input_rails", "validate", "admit", "cache_lookup",
                          "generate", "output_rails", "account"}
    root = spans.pop("request")
    assert root.attributes["mistral_serve.status"] == 200
    for name, span in spans.items():
        assert span.parent is not None and span.parent.span_id == root.context.span_id, name
        assert span.context.trace_id == root.context.trace_id
    assert spans["generate"].attributes["mistral_serve.completion_tokens"] == 2
    assert spans["cache_lookup"].attributes["mistral_serve.cache"] == "bypass"
