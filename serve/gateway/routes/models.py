"""``GET /v1/models``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from ...protocol import ModelCard, ModelList
from ...tenancy.keys import Principal
from ..pipeline import Pipeline
from .deps import pipeline, principal

router = APIRouter()


@router.get("/v1/models", response_model=ModelList)
async def models(request: Request, caller: Principal = Depends(principal),
                 served: Pipeline = Depends(pipeline)) -> ModelList:
    """The served models this caller may use."""
    started_at = request.app.state.started_at
    return ModelList(data=[ModelCard(id=name, created=started_at) for name in served.models(caller)])
