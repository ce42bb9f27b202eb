"""``GET /healthz`` (liveness) and ``GET /readyz`` (readiness)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from ..pipeline import Pipeline
from .deps import pipeline

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the gateway process answers."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request, served: Pipeline = Depends(pipeline)) -> JSONResponse:
    """Readiness: the model is loaded and generates a token, and the gateway is not draining."""
    drain = request.app.state.drain
    if drain is not None and drain.state.refusing:
        return JSONResponse({"status": "draining"}, status_code=503)
    if await served.engine.ready():
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "not ready"}, status_code=503)
