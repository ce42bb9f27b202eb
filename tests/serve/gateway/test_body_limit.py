"""The body-limit middleware: 413 before parsing, declared or counted as the body arrives."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI, Request

from serve.gateway.body_limit import BodyLimitMiddleware

LIMIT = 1024


@pytest.fixture
def app_and_reads():
    app = FastAPI()
    reads: list[int] = []

    @app.post("/echo")
    async def echo(body: dict) -> dict:
        reads.append(len(body))
        return {"keys": len(body)}

    @app.post("/raw")
    async def raw(request: Request) -> dict:
        data = await request.body()
        reads.append(len(data))
        return {"bytes": len(data)}

    app.add_middleware(BodyLimitMiddleware, max_bytes=LIMIT)
    return app, reads


def client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway")


def assert_413(response: httpx.Response) -> None:
    assert response.status_code == 413
    assert response.json() == {"error": {
        "message": f"The request body is too large: this API accepts at most {LIMIT} bytes.",
        "type": "invalid_request_error", "param": None, "code": "request_too_large"}}


async def test_a_body_within_the_limit_passes(app_and_reads):
    app, reads = app_and_reads
    async with client(app) as c:
        response = await c.post("/echo", json={"a": "x" * 100})
    assert response.status_code == 200 and reads == [1]


async def test_a_declared_oversized_body_is_refused_before_the_app_reads_it(app_and_reads):
    app, reads = app_and_reads
    async with client(app) as c:
        assert_413(await c.post("/echo", content=b"{" + b" " * (LIMIT * 64) + b"}",
                                headers={"content-type": "application/json"}))
    assert reads == []


async def test_a_chunked_body_is_counted_as_it_arrives(app_and_reads):
    app, reads = app_and_reads
    sent: list[int] = []

    async def chunks():
        for _ in range(1000):  # 256 KiB in all, far past the limit
            sent.append(256)
            yield b" " * 256

    async with client(app) as c:
        response = await c.post("/raw", content=chunks())
    assert_413(response)
    assert reads == []
    assert sum(sent) < 256 * 1000  # reading stopped once the limit was passed


async def test_a_malformed_content_length_is_refused(app_and_reads):
    app, _ = app_and_reads

    async def call(scope_headers):
        messages = []

        async def receive():
            return {"type": "http.request", "body": b"{}", "more_body": False}

        async def send(message):
            messages.append(message)

        scope = {"type": "http", "method": "POST", "path": "/echo", "headers": scope_headers,
                 "query_string": b"", "root_path": ""}
        await BodyLimitMiddleware(app, max_bytes=LIMIT)(scope, receive, send)
        return messages[0]["status"]

    assert await call([(b"content-length", b"nope")]) == 413
    assert await call([(b"content-length", b"-5")]) == 413
