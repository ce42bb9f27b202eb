"""Dependencies the routes share: the pipeline, the authenticated caller, the cache opt-out, and
the JSON or SSE reply."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Header, Request
from fastapi.responses import JSONResponse, StreamingResponse

from ...tenancy.keys import Principal
from ..pipeline import Pipeline, Reply

_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def pipeline(request: Request) -> Pipeline:
    """The app's pipeline (set by :func:`serve.gateway.routes.create_app`)."""
    return request.app.state.pipeline


async def principal(request: Request, authorization: str | None = Header(default=None)) -> Principal:
    """The caller behind the ``Authorization`` header (401/503 otherwise)."""
    caller = await pipeline(request).authenticate(authorization)
    request.state.team = caller.team.name  # for the metrics of a request refused later
    return caller


def cache_allowed(cache_control: str | None = Header(default=None)) -> bool:
    """``Cache-Control: no-cache`` (or ``no-store``) opts a request out of the prompt cache."""
    directives = {d.strip().lower() for d in (cache_control or "").split(",")}
    return not directives & {"no-cache", "no-store"}


def respond(reply: Reply):
    """A JSON response, or an SSE stream, with the reply's headers."""
    if isinstance(reply.body, AsyncIterator):
        return StreamingResponse(reply.body, media_type="text/event-stream", headers=_SSE_HEADERS | reply.headers)
    return JSONResponse(reply.body.model_dump(), headers=reply.headers)
