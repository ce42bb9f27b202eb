"""Typed API errors and their one mapping to OpenAI's error envelope.

Every error a client can see is an :class:`APIError`. The engine's own exceptions
(:mod:`serve.engine.errors`) become API errors in :func:`api_error`, the one place that maps them.
Anything else raised while serving a request becomes a generic 500 whose message reveals nothing
internal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from .engine.errors import EngineFailure, EngineOverloaded, EngineUnavailable
from .protocol import ErrorBody, ErrorResponse


@dataclass(eq=False)
class APIError(Exception):
    """An error with an HTTP status and OpenAI's ``type``/``param``/``code``."""

    message: str
    param: str | None = None
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"

    def __str__(self) -> str:
        return self.message

    def body(self) -> ErrorResponse:
        """The OpenAI error envelope for this error."""
        return ErrorResponse(
            error=ErrorBody(message=self.message, type=self.type, param=self.param, code=self.code)
        )


class InvalidRequestError(APIError):
    """The request is malformed or asks for something invalid (400)."""

    status = 400
    type = "invalid_request_error"


class ContextLengthExceededError(InvalidRequestError):
    """Prompt plus requested completion do not fit the model's context (400)."""

    def __init__(self, prompt_tokens: int, max_tokens: int, limit: int, param: str) -> None:
        super().__init__(
            message=(
                f"This model's maximum context length is {limit} tokens. However, you requested "
                f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the prompt, {max_tokens} "
                "for the completion). Please reduce the prompt or the completion length."
            ),
            param=param,
            code="context_length_exceeded",
        )


class ContentFilterError(InvalidRequestError):
    """The input rails blocked the request (400, ``code: content_filter``)."""

    def __init__(self, rail: str | None, param: str) -> None:
        super().__init__(
            message=f"Your request was blocked by the content policy (rail: {rail or 'unknown'}).",
            param=param,
            code="content_filter",
        )


class AuthenticationError(APIError):
    """No, malformed, unknown or revoked API key (401)."""

    status = 401
    type = "invalid_request_error"

    def __init__(self, message: str = "Incorrect or missing API key. Send 'Authorization: Bearer <key>'.") -> None:
        super().__init__(message=message, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})


class PermissionDeniedError(APIError):
    """The key is valid but may not do this (403)."""

    status = 403
    type = "invalid_request_error"


class RateLimitError(APIError):
    """The team's requests or tokens per minute are used up (429)."""

    status = 429
    type = "requests"


class TokenRateLimitError(RateLimitError):
    """The team's tokens per minute are used up (429)."""

    type = "tokens"


class NotFoundError(APIError):
    """The route or resource does not exist (404)."""

    status = 404
    type = "invalid_request_error"


class ModelNotFoundError(NotFoundError):
    """The requested model is not served here (404, as OpenAI answers)."""

    def __init__(self, model: str, served: list[str]) -> None:
        # The unknown name is not echoed: it is raw client input.
        super().__init__(
            message=f"The requested model does not exist. Available models: {', '.join(served)}.",
            param="model",
            code="model_not_found",
        )


class MethodNotAllowedError(APIError):
    """The route exists but not for this HTTP method (405)."""

    status = 405
    type = "invalid_request_error"


class ServiceUnavailableError(APIError):
    """The service cannot take the request now; the client may retry (503)."""

    status = 503
    type = "server_error"


class InternalError(APIError):
    """Generation failed, or anything unexpected (500); details stay in the server log."""

    status = 500
    type = "server_error"


def internal_error() -> InternalError:
    """The error clients see for any unexpected failure: it reveals nothing internal."""
    return InternalError(message="The server had an error while processing your request.", code="internal_error")


def overloaded_error(status: int, retry_after_s: float | None) -> APIError:
    """The refusal when every engine replica is full and the queue bound is reached.

    Args:
        status: 503 (default) or 429 (``engine.deployment.backpressure.status_code``).
        retry_after_s: Seconds for the ``Retry-After`` header (rounded up); None: no header.
    """
    headers = {} if retry_after_s is None else {"Retry-After": str(math.ceil(retry_after_s))}
    error_class = RateLimitError if status == 429 else ServiceUnavailableError
    return error_class(message="The engine is at capacity. Please retry shortly.", code="engine_overloaded",
                       headers=headers)


def engine_unavailable_error(retry_after_s: float = 1) -> ServiceUnavailableError:
    """A 503 for an engine replica lost mid-request (crash, node loss, failed health check)."""
    return ServiceUnavailableError(
        message="The engine replica serving this request became unavailable. Please retry.",
        code="engine_unavailable",
        headers={"Retry-After": str(math.ceil(retry_after_s))},
    )


def shutting_down_error() -> ServiceUnavailableError:
    """A 503 for a new request on a gateway that is draining before it stops."""
    return ServiceUnavailableError(message="The server is shutting down. Please retry shortly.",
                                   code="server_shutting_down", headers={"Retry-After": "1"})


class PayloadTooLargeError(APIError):
    """The request body is larger than the gateway accepts (413); refused before parsing."""

    status = 413
    type = "invalid_request_error"


def payload_too_large_error(limit_bytes: int) -> PayloadTooLargeError:
    """The 413 for a body over ``gateway.max_request_bytes`` (declared or counted as it arrives)."""
    return PayloadTooLargeError(
        message=f"The request body is too large: this API accepts at most {limit_bytes} bytes.",
        code="request_too_large",
    )


def api_error(error: BaseException) -> APIError:
    """The API error a client sees for ``error``: the one mapping of engine exceptions.

    An :class:`APIError` is itself; an engine overload is the deployment's configured 503 or 429
    with ``Retry-After``; a lost engine a 503 to retry; anything else a generic 500.
    """
    if isinstance(error, APIError):
        return error
    if isinstance(error, EngineOverloaded):
        return overloaded_error(error.status_hint, error.retry_after_s)
    if isinstance(error, EngineUnavailable):
        return engine_unavailable_error(error.retry_after_s)
    if isinstance(error, EngineFailure):
        return internal_error()
    return internal_error()
