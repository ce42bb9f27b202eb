"""Tracing: spans per stage with the SDK's in-memory exporter; nothing at all when off."""

from __future__ import annotations

import asyncio
import sys

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from serve.config import TracingConfig
from serve.tracing import build_tracing


def test_off_by_default_records_nothing_and_imports_no_sdk(monkeypatch):
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)  # any import of the SDK fails
    tracing = build_tracing(TracingConfig())
    assert not tracing.enabled
    with tracing.stage("request", team="a") as span:
        assert span is None
    tracing.open_stage("generate").end(tokens=3)


def test_each_stage_is_a_child_span_of_the_request():
    exporter = InMemorySpanExporter()
    tracing = build_tracing(TracingConfig(enabled=True, service_name="svc"), exporter=exporter)
    with tracing.stage("request", team="search", route="/v1/chat/completions"):
        with tracing.stage("authenticate"):
            pass
        with tracing.stage("admit", tokens=40):
            pass
        generate = tracing.open_stage("generate")
        generate.end(completion_tokens=7, cached=None)
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert set(spans) == {f"mistral_serve.{n}" for n in ("request", "authenticate", "admit", "generate")}
    root = spans["mistral_serve.request"]
    assert root.parent is None
    assert root.attributes["mistral_serve.team"] == "search"
    assert root.resource.attributes["service.name"] == "svc"
    for name in ("authenticate", "admit", "generate"):
        span = spans[f"mistral_serve.{name}"]
        assert span.parent.span_id == root.context.span_id
        assert span.context.trace_id == root.context.trace_id
    assert spans["mistral_serve.admit"].attributes["mistral_serve.tokens"] == 40
    assert dict(spans["mistral_serve.generate"].attributes) == {"mistral_serve.completion_tokens": 7}


def test_an_exception_is_recorded_on_its_stage():
    exporter = InMemorySpanExporter()
    tracing = build_tracing(TracingConfig(enabled=True), exporter=exporter)
    with pytest.raises(ValueError), tracing.stage("validate"):
        raise ValueError("bad field")
    (span,) = exporter.get_finished_spans()
    assert not span.status.is_ok
    assert [event.name for event in span.events] == ["exception"]


def test_concurrent_requests_keep_their_own_trees():
    exporter = InMemorySpanExporter()
    tracing = build_tracing(TracingConfig(enabled=True), exporter=exporter)

    async def request(team: str, started: asyncio.Event, other: asyncio.Event) -> None:
        with tracing.stage("request", team=team), tracing.stage("generate", team=team):
            started.set()
            await other.wait()  # both requests are inside their stage at once

    async def both() -> None:
        a, b = asyncio.Event(), asyncio.Event()
        await asyncio.gather(request("a", a, b), request("b", b, a))

    asyncio.run(both())
    spans = exporter.get_finished_spans()
    roots = {s.attributes["mistral_serve.team"]: s for s in spans if s.name == "mistral_serve.request"}
    for child in (s for s in spans if s.name == "mistral_serve.generate"):
        assert child.parent.span_id == roots[child.attributes["mistral_serve.team"]].context.span_id


def test_sampling_ratio_zero_records_no_span():
    exporter = InMemorySpanExporter()
    tracing = build_tracing(TracingConfig(enabled=True, sample_ratio=0), exporter=exporter)
    with tracing.stage("request"), tracing.stage("admit"):
        pass
    assert exporter.get_finished_spans() == ()


def test_the_configured_exporter_is_otlp_to_the_endpoint_or_the_console():
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    from serve.tracing import _exporter

    otlp = _exporter(TracingConfig(enabled=True, endpoint="http://collector:4318/v1/traces"))
    assert isinstance(otlp, OTLPSpanExporter) and otlp._endpoint == "http://collector:4318/v1/traces"
    assert isinstance(_exporter(TracingConfig(enabled=True, exporter="console")), ConsoleSpanExporter)


async def test_the_middleware_makes_the_root_span_of_each_api_request():
    import httpx
    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse

    from serve.tracing import TracingMiddleware

    exporter = InMemorySpanExporter()
    tracing = build_tracing(TracingConfig(enabled=True), exporter=exporter)
    app = FastAPI()

    @app.post("/v1/completions")
    async def completions():
        with tracing.stage("admit"):
            pass
        generate = tracing.open_stage("generate")

        async def body():
            yield "data: x\n\n"
            generate.end(completion_tokens=1)

        return StreamingResponse(body(), media_type="text/event-stream")

    @app.get("/readyz")
    async def ready():
        return {}

    transport = httpx.ASGITransport(app=TracingMiddleware(app, tracing))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.post("/v1/completions")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert set(spans) == {"mistral_serve.request", "mistral_serve.admit", "mistral_serve.generate"}
    root = spans["mistral_serve.request"]
    assert root.attributes["mistral_serve.status"] == 200 and root.attributes["mistral_serve.path"] == "/v1/completions"
    assert all(spans[n].parent.span_id == root.context.span_id for n in ("mistral_serve.admit", "mistral_serve.generate"))
