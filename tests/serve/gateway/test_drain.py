"""The drain middleware: in-flight counting and refusals while draining (the Ray side of the drain
is exercised end to end by tests/e2e/test_local_run_drain.py)."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI

from serve.gateway.drain import DrainState, InFlightMiddleware, signal_name


def app_with(state: DrainState, gate: asyncio.Event | None = None) -> FastAPI:
    app = FastAPI()

    @app.get("/v1/slow")
    async def slow():
        if gate is not None:
            await gate.wait()
        return {"in_flight": state.in_flight}

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    app.add_middleware(InFlightMiddleware, state=state)
    return app


def client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_requests_are_counted_while_they_run():
    state = DrainState()
    async with client(app_with(state)) as http:
        assert (await http.get("/v1/slow")).json() == {"in_flight": 1}
    assert state.in_flight == 0


async def test_a_draining_gateway_refuses_new_requests_but_not_probes():
    state = DrainState()
    state.refusing = True
    async with client(app_with(state)) as http:
        refused = await http.get("/v1/slow")
        probe = await http.get("/healthz")
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "server_shutting_down"
    assert refused.headers["retry-after"] == "1" and probe.status_code == 200 and state.in_flight == 0


async def test_a_request_in_flight_when_the_drain_starts_completes():
    state, gate = DrainState(), asyncio.Event()
    async with client(app_with(state, gate)) as http:
        pending = asyncio.create_task(http.get("/v1/slow"))
        while state.in_flight == 0:
            await asyncio.sleep(0)
        state.refusing = True
        gate.set()
        assert (await pending).status_code == 200
    assert state.in_flight == 0


def test_the_signal_is_named_after_the_application():
    assert signal_name("app") == "app-drain"
