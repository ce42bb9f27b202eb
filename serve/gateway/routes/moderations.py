"""``POST /v1/moderations``: OpenAI's Moderations API, backed by the caller's input rails."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from ...protocol import ModerationRequest, ModerationResponse
from ...tenancy.keys import Principal
from ..pipeline import Pipeline
from .deps import pipeline, principal, respond

router = APIRouter()


@router.post("/v1/moderations", response_model=ModerationResponse)
async def moderations(body: ModerationRequest, caller: Principal = Depends(principal),
                      served: Pipeline = Depends(pipeline)):
    """Classifies the input(s) with the caller's policy (metered like generation)."""
    return respond(await served.moderations(caller, body.texts()))
