"""``GET /v1/models``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from ...errors import ModelNotFoundError
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


@router.get("/v1/models/{model_id:path}", response_model=ModelCard)
async def model(model_id: str, request: Request, caller: Principal = Depends(principal),
                served: Pipeline = Depends(pipeline)) -> ModelCard:
    """One served model, if this caller may use it (404 ``model_not_found`` otherwise)."""
    allowed = served.models(caller)
    if model_id not in allowed:
        raise ModelNotFoundError(model_id, allowed or [served.served_model])
    return ModelCard(id=model_id, created=request.app.state.started_at)
