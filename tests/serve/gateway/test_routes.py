"""The HTTP layer with a deterministic fake engine: envelopes, SSE framing, mid-stream errors.

The capability itself is proven end to end in tests/e2e; this covers error paths a real engine
rarely takes.
"""

from __future__ import annotations

import json

import httpx
import pytest

from serve.config import TenancyConfig
from serve.engine.errors import EngineOverloaded, EngineUnavailable
from serve.engine.types import EngineOutput
from serve.gateway.adapter import EngineAdapter
from serve.gateway.drain import DrainReporter, DrainState
from serve.gateway.pipeline import Pipeline, Tenancy
from serve.gateway.routes import create_app
from serve.redis_gate import RedisGate
from serve.tenancy.auth import Authenticator
from serve.tenancy.keys import KeyStore
from serve.tenancy.quotas import QuotaManager
from serve.tenancy.usage import UsageRecorder


class FakeEngine:
    """Emits fixed pieces, then optionally fails."""

    def __init__(self, pieces=("Hel", "lo"), fail_with: Exception | None = None, ready=True):
        self.pieces, self.fail_with, self._ready = pieces, fail_with, ready

    async def generate(self, request):
        for i, piece in enumerate(self.pieces):
            last = i == len(self.pieces) - 1 and self.fail_with is None
            yield EngineOutput(text=piece, num_tokens=1, finish_reason="stop" if last else None)
        if self.fail_with is not None:
            raise self.fail_with

    async def ready(self):
        return self._ready


@pytest.fixture
async def make_client(tiny_encoder, redis_url):
    """Builds a client of the app over a fake engine; tenancy runs on the real Redis."""
    gate = RedisGate(redis_url)
    config = TenancyConfig()
    key, _ = await KeyStore(gate.client).create("routes")
    tenancy = Tenancy(Authenticator(KeyStore(gate.client), gate, config), QuotaManager(gate, config),
                      UsageRecorder(gate), cache=None)

    def make(engine, drain=None) -> httpx.AsyncClient:
        pipeline = Pipeline(EngineAdapter(tiny_encoder, 128, 4), engine, "m", "m@test", tenancy)
        transport = httpx.ASGITransport(app=create_app(pipeline, started_at=0, drain=drain), raise_app_exceptions=False)
        return httpx.AsyncClient(transport=transport, base_url="http://test",
                                 headers={"Authorization": f"Bearer {key}"})

    yield make
    await gate.close()


BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


async def test_non_streamed_chat_shape(make_client):
    async with make_client(FakeEngine()) as client:
        body = (await client.post("/v1/chat/completions", json=BODY)).json()
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Hello"}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == 2


async def test_engine_failure_midstream_ends_with_an_error_event(make_client):
    engine = FakeEngine(fail_with=EngineUnavailable("replica lost"))
    async with make_client(engine) as client:
        raw = (await client.post("/v1/chat/completions", json={**BODY, "stream": True})).text
    events = [e for e in raw.split("\n\n") if e]
    assert "[DONE]" not in raw
    assert json.loads(events[-1].removeprefix("data: ")) == {"error": {
        "message": "The engine replica serving this request became unavailable. Please retry.",
        "type": "server_error", "param": None, "code": "engine_unavailable",
    }}
    assert "Hel" in events[1]


async def test_unexpected_engine_error_is_a_generic_500_without_internals(make_client):
    engine = FakeEngine(fail_with=RuntimeError("secret internal detail"))
    async with make_client(engine) as client:
        response = await client.post("/v1/chat/completions", json=BODY)
        stream = await client.post("/v1/chat/completions", json={**BODY, "stream": True})
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert "secret" not in response.text and "secret" not in stream.text
    assert '"code":"internal_error"' in stream.text


@pytest.mark.parametrize("body", [BODY, {**BODY, "stream": True}, {**BODY, "stream": True, "n": 2}],
                         ids=["whole", "stream", "stream-n2"])
async def test_overload_before_any_output_is_a_503_even_for_a_stream(make_client, body):
    refusal = EngineOverloaded(retry_after_s=0.5, status_hint=503)
    async with make_client(FakeEngine(pieces=(), fail_with=refusal)) as client:
        response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 503 and response.json()["error"]["code"] == "engine_overloaded"
    assert response.headers["retry-after"] == "1"


async def test_an_overload_configured_as_429_is_a_rate_limit(make_client):
    async with make_client(FakeEngine(pieces=(), fail_with=EngineOverloaded(2, status_hint=429))) as client:
        response = await client.post("/v1/chat/completions", json=BODY)
    assert response.status_code == 429 and response.json()["error"]["type"] == "requests"
    assert response.headers["retry-after"] == "2"


async def test_a_draining_gateway_refuses_new_requests_and_counts_those_in_flight(make_client):
    state = DrainState()
    seen_in_flight = []

    class CountingEngine(FakeEngine):
        async def generate(self, request):
            seen_in_flight.append(state.in_flight)
            async for output in super().generate(request):
                yield output

    async with make_client(CountingEngine(), drain=DrainReporter("app", "replica", state)) as client:
        assert (await client.post("/v1/chat/completions", json={**BODY, "stream": True})).status_code == 200
        assert seen_in_flight == [1] and state.in_flight == 0
        state.refusing = True
        refused = await client.post("/v1/chat/completions", json=BODY)
        assert (await client.get("/readyz")).json() == {"status": "draining"}
        assert (await client.get("/healthz")).status_code == 200
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["code"] == "server_shutting_down"
    assert seen_in_flight == [1]  # the refused request never reached the engine


@pytest.mark.parametrize(
    ("content", "headers", "code"),
    [(b"[1, 2]", {"content-type": "application/json"}, "invalid_body"),
     (b"model=m", {"content-type": "application/x-www-form-urlencoded"}, "invalid_body"),
     (b"{", {"content-type": "application/json"}, "invalid_json")],
)
async def test_malformed_bodies_are_400(make_client, content, headers, code):
    async with make_client(FakeEngine()) as client:
        response = await client.post("/v1/chat/completions", content=content, headers=headers)
    assert response.status_code == 400 and response.json()["error"]["code"] == code


async def test_missing_field_names_the_param(make_client):
    async with make_client(FakeEngine()) as client:
        response = await client.post("/v1/chat/completions", json={"model": "m"})
    assert response.json()["error"] == {
        "message": "Missing required parameter: 'messages'.", "type": "invalid_request_error",
        "param": "messages", "code": "missing_required_parameter",
    }


async def test_readiness_follows_the_engine(make_client):
    async with make_client(FakeEngine(ready=False)) as client:
        assert (await client.get("/readyz")).status_code == 503
        assert (await client.get("/healthz")).status_code == 200
