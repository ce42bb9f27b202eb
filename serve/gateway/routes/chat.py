"""``POST /v1/chat/completions``."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from ...protocol import ChatCompletion, ChatCompletionRequest
from ...tenancy.keys import Principal
from ..pipeline import Pipeline
from .deps import cache_allowed, pipeline, principal, respond

router = APIRouter()


@router.post("/v1/chat/completions", response_model=ChatCompletion)
async def chat_completions(body: ChatCompletionRequest, caller: Principal = Depends(principal),
                           use_cache: bool = Depends(cache_allowed), served: Pipeline = Depends(pipeline)):
    """A chat completion (JSON, or server-sent events with ``stream: true``)."""
    return respond(await served.chat(caller, body, use_cache=use_cache))
