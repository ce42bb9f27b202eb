"""Every error mapped to OpenAI's envelope: the one place where errors meet HTTP.

API errors are themselves; engine exceptions go through :func:`serve.errors.api_error`; FastAPI's
validation and routing errors become 400/404/405; anything else a 500 that reveals nothing.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import metrics
from ..engine.errors import EngineFailure
from ..errors import APIError, InvalidRequestError, MethodNotAllowedError, NotFoundError, api_error, internal_error
from ..logs import note

logger = logging.getLogger(__name__)

_GENERATION_ENDPOINTS = {"/v1/chat/completions": "chat", "/v1/completions": "completions"}
# Pydantic adds the member type of a union to error locations; they are not request fields.
_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "none"}


def install_error_handlers(app: FastAPI) -> None:
    """Maps every error to OpenAI's envelope: the one place where errors meet HTTP."""

    def envelope(error: APIError, request: Request | None = None) -> JSONResponse:
        note(error_code=error.code)
        path = request.url.path.removeprefix(request.scope.get("root_path", "")) if request is not None else ""
        endpoint = _GENERATION_ENDPOINTS.get(path)
        if request is not None and endpoint is not None:  # refused before generation; served requests are counted by the pipeline
            metrics.record_request(getattr(request.state, "team", None), endpoint, error.status)
        return JSONResponse(error.body().model_dump(), status_code=error.status, headers=dict(error.headers))

    @app.exception_handler(APIError)
    async def known_error(request: Request, error: APIError) -> JSONResponse:
        return envelope(error, request)

    @app.exception_handler(EngineFailure)
    async def engine_failure(request: Request, error: EngineFailure) -> JSONResponse:
        mapped = api_error(error)
        if mapped.code == "internal_error":
            logger.error("engine call failed", exc_info=error)
        return envelope(mapped, request)

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
