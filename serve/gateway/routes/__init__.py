"""HTTP routes of the OpenAI-compatible API, one ``APIRouter`` module per resource.

HTTP only: the work happens in the pipeline, which routes reach through the dependencies in
:mod:`serve.gateway.routes.deps`. Errors meet HTTP in :mod:`serve.gateway.error_handlers`; the
drain's in-flight count is middleware (:mod:`serve.gateway.drain`).
"""

from __future__ import annotations

import contextlib
from typing import Any

from fastapi import APIRouter, FastAPI

from ... import __version__
from ...logs import AccessLogMiddleware
from ...protocol import ErrorResponse
from ...tracing import TracingMiddleware
from ..drain import DrainReporter, InFlightMiddleware
from ..error_handlers import install_error_handlers
from ..pipeline import Pipeline
from . import chat, completions, health, models, moderations

_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {status: {"model": ErrorResponse} for status in (400, 401, 403, 404, 429, 500, 503)}
ROUTERS = (chat.router, completions.router, moderations.router, models.router, health.router)


def create_app(pipeline: Pipeline, started_at: int, admin_router: APIRouter | None = None,
               drain: DrainReporter | None = None, log_text: bool = False) -> FastAPI:
    """Builds the FastAPI app of the gateway.

    Args:
        pipeline: Serves the requests.
        started_at: Unix time the model was loaded (the ``created`` of ``/v1/models``).
        admin_router: The ``/admin`` routes, when enabled.
        drain: Counts in-flight requests and refuses new ones while the application drains.
        log_text: Put prompt and completion text in the access records.
    """

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        if drain is not None:
            drain.start()
        yield
        if drain is not None:
            await drain.stop()

    app = FastAPI(
        title="mistral-serve",
        description="OpenAI-compatible API for Mistral-7B-Instruct on Ray Serve.",
        version=__version__,
        responses=_ERROR_RESPONSES,
        lifespan=lifespan,
    )
    app.state.pipeline, app.state.started_at, app.state.drain = pipeline, started_at, drain
    install_error_handlers(app)
    if drain is not None:
        app.add_middleware(InFlightMiddleware, state=drain.state)
    # NOTE: added last, so outermost: they see every response, the refusals of the ones above too.
    app.add_middleware(TracingMiddleware, tracing=pipeline.tracing)
    app.add_middleware(AccessLogMiddleware, include_text=log_text)
    if admin_router is not None:
        app.include_router(admin_router)
    for router in ROUTERS:
        app.include_router(router)
    return app
