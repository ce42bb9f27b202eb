"""HTTP routes of the OpenAI-compatible API. HTTP only: the work happens in the pipeline."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from guardrails.moderations import ModerationRequest, ModerationResponse

from .. import metrics
from ..errors import APIError, InvalidRequestError, MethodNotAllowedError, NotFoundError, internal_error
from ..protocol import (
    ChatCompletion,
    ChatCompletionRequest,
    Completion,
    CompletionRequest,
    ErrorResponse,
    ModelCard,
    ModelList,
)
from ..tenancy.keys import Principal
from .body_limit import BodyLimitMiddleware
from .drain import DrainReporter, InFlightMiddleware
from .pipeline import Pipeline, Reply
from .readiness import ReadinessCache

logger = logging.getLogger(__name__)

_ERROR_RESPONSES = {status: {"model": ErrorResponse} for status in (400, 401, 403, 404, 429, 500, 503)}
_GENERATION_ENDPOINTS = {"/v1/chat/completions": "chat", "/v1/completions": "completions"}
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# Pydantic adds the member type of a union to error locations; they are not request fields.
_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "none"}


def create_app(pipeline: Pipeline, started_at: int, admin_router=None, drain: DrainReporter | None = None,
               *, docs_enabled: bool = True, max_request_bytes: int | None = None,
               readiness: ReadinessCache | None = None) -> FastAPI:
    """Builds the FastAPI app of the gateway.

    Args:
        pipeline: Serves the requests.
        started_at: Unix time the model was loaded (the ``created`` of ``/v1/models``).
        admin_router: The ``/admin`` routes, when enabled.
        drain: Counts in-flight requests and refuses new ones while the application drains.
        docs_enabled: Serve ``/docs``, ``/redoc`` and ``/openapi.json``.
        max_request_bytes: Bodies over this get 413 before parsing (None: no limit).
        readiness: Answers ``/readyz`` from a short cache (None: the engine is asked every time).
    """
    if readiness is None and pipeline is not None:
        readiness = ReadinessCache(lambda: pipeline.engine.ready(), ttl_s=0)

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
        version="0.1.0",
        responses=_ERROR_RESPONSES,
        lifespan=lifespan,
        **({} if docs_enabled else {"docs_url": None, "redoc_url": None, "openapi_url": None}),
    )
    install_error_handlers(app)
    if drain is not None:
        app.add_middleware(InFlightMiddleware, state=drain.state)
    if max_request_bytes is not None:
        # NOTE: added last, so it runs first: an oversized body is refused before anything reads it.
        app.add_middleware(BodyLimitMiddleware, max_bytes=max_request_bytes)
    if admin_router is not None:
        app.include_router(admin_router)

    async def principal(request: Request, authorization: str | None = Header(default=None)) -> Principal:
        caller = await pipeline.authenticate(authorization)
        request.state.team = caller.team.name  # for the metrics of a request refused later
        return caller

    @app.post("/v1/chat/completions", response_model=ChatCompletion)
    async def chat_completions(
        body: ChatCompletionRequest,
        caller: Principal = Depends(principal),
        cache_control: str | None = Header(default=None),
    ):
        return _respond(await pipeline.chat(caller, body, use_cache=_cache_allowed(cache_control)))

    @app.post("/v1/completions", response_model=Completion)
    async def completions(
        body: CompletionRequest,
        caller: Principal = Depends(principal),
        cache_control: str | None = Header(default=None),
    ):
        return _respond(await pipeline.completion(caller, body, use_cache=_cache_allowed(cache_control)))

    @app.post("/v1/moderations", response_model=ModerationResponse)
    async def moderations(body: ModerationRequest, caller: Principal = Depends(principal)):
        return _respond(await pipeline.moderations(caller, body.texts()))

    @app.get("/v1/models", response_model=ModelList)
    async def models(caller: Principal = Depends(principal)) -> ModelList:
        return ModelList(data=[ModelCard(id=name, created=started_at) for name in pipeline.models(caller)])

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the gateway process answers."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """Readiness: the model is loaded and generates a token, and the gateway is not draining."""
        if drain is not None and drain.state.refusing:
            return JSONResponse({"status": "draining"}, status_code=503)
        if await readiness.ready():
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "not ready"}, status_code=503)

    return app


def _cache_allowed(cache_control: str | None) -> bool:
    """``Cache-Control: no-cache`` (or ``no-store``) opts a request out of the prompt cache."""
    directives = {d.strip().lower() for d in (cache_control or "").split(",")}
    return not directives & {"no-cache", "no-store"}


def _respond(reply: Reply):
    if isinstance(reply.body, AsyncIterator):
        return StreamingResponse(reply.body, media_type="text/event-stream", headers=_SSE_HEADERS | reply.headers)
    return JSONResponse(reply.body.model_dump(), headers=reply.headers)


def install_error_handlers(app: FastAPI) -> None:
    """Maps every error to OpenAI's envelope: the one place where errors meet HTTP."""

    def envelope(error: APIError, request: Request | None = None) -> JSONResponse:
        path = request.url.path.removeprefix(request.scope.get("root_path", "")) if request is not None else ""
        endpoint = _GENERATION_ENDPOINTS.get(path)
        if endpoint is not None:  # refused before generation; served requests are counted by the pipeline
            metrics.record_request(getattr(request.state, "team", None), endpoint, error.status)
        return JSONResponse(error.body().model_dump(), status_code=error.status, headers=dict(error.headers))

    @app.exception_handler(APIError)
    async def api_error(request: Request, error: APIError) -> JSONResponse:
        return envelope(error, request)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        return envelope(validation_error(error), request)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 405:
            return envelope(MethodNotAllowedError(message="Method not allowed for this route."))
        if error.status_code == 404:
            return envelope(NotFoundError(message="Unknown route. See /docs for the API."))
        return envelope(InvalidRequestError(message="Invalid request."))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        logger.exception("unhandled error", exc_info=error)
        return envelope(internal_error(), request)


def validation_error(error: RequestValidationError) -> InvalidRequestError:
    """Turns FastAPI's validation error into a 400 that names the field but not its value."""
    first = error.errors()[0]
    if first.get("type") == "json_invalid":
        return InvalidRequestError(
            message="We could not parse the JSON body of your request. The body must be valid JSON.",
            code="invalid_json",
        )
    path = [str(p) for p in first.get("loc", ())[1:] if not _is_type_tag(p)]
    if not path:
        return InvalidRequestError(
            message="The request body must be a JSON object sent with Content-Type: application/json.",
            code="invalid_body",
        )
    param = ".".join(path)
    if first.get("type") == "missing":
        return InvalidRequestError(message=f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")
    return InvalidRequestError(
        message=f"Invalid value for '{param}': {first.get('msg', 'invalid value')}.",
        param=param,
        code="invalid_value",
    )


def _is_type_tag(part: object) -> bool:
    return isinstance(part, str) and (part in _TYPE_TAGS or "[" in part)
