"""``GET /healthz`` (liveness) and ``GET /readyz`` (readiness)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the gateway process answers."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Readiness: the model is loaded and generates a token, and the gateway is not draining.

    Unauthenticated, so the engine check is cached (:class:`serve.gateway.readiness.ReadinessCache`).
    """
    drain = request.app.state.drain
    if drain is not None and drain.state.refusing:
        return JSONResponse({"status": "draining"}, status_code=503)
    if await request.app.state.readiness.ready():
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "not ready"}, status_code=503)
