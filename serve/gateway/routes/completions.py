"""``POST /v1/completions``."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from ...protocol import Completion, CompletionRequest
from ...tenancy.keys import Principal
from ..pipeline import Pipeline
from .deps import cache_allowed, pipeline, principal, respond

router = APIRouter()


@router.post("/v1/completions", response_model=Completion)
async def completions(body: CompletionRequest, caller: Principal = Depends(principal),
                      use_cache: bool = Depends(cache_allowed), served: Pipeline = Depends(pipeline)):
    """A text completion (JSON, or server-sent events with ``stream: true``)."""
    return respond(await served.completion(caller, body, use_cache=use_cache))
