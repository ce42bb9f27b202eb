"""Structured logs: one access record per request, and the package's logs in Ray Serve's log files.

Ray Serve writes each replica's log to its own file, one JSON object per line when the
application's ``logging_config`` says ``encoding: JSON`` (``LoggingConfig.serve_logging_config``),
and adds the replica, deployment, application and the request id (the ``x-request-id`` header
every HTTP response carries) to every record. Records of loggers under ``ray.serve`` get that;
:func:`use_serve_log_handlers` puts this project's own loggers (``serve.*``, ``guardrails.*``)
there too.

Access records never carry prompt or completion text unless ``logging.include_text`` asks, and
never an API key (only its id).
"""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from typing import Any

# NOTE: a child of Ray Serve's logger ("ray.serve"): inside a replica its records reach Serve's
# handlers, formatter and request-context filter (request id, route, application).
ACCESS_LOGGER = "ray.serve.mistral_serve.access"
SERVE_LOGGER = "ray.serve"
PACKAGE_LOGGERS = ("serve", "guardrails")


@dataclass
class AccessRecord:
    """What one API request did; the fields of its access log line."""

    method: str
    path: str
    status: int = 200
    team: str | None = None
    key_id: str | None = None
    model: str | None = None
    stream: bool = False
    cache: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    finish_reasons: list[str] = field(default_factory=list)
    error_code: str | None = None
    moderation: str | None = None
    completion_id: str | None = None
    prompt: Any = None
    completion: Any = None

    def fields(self, include_text: bool) -> dict[str, Any]:
        """The record as log fields (``None`` values left out; text only when asked)."""
        values = asdict(self)
        if not include_text:
            values.pop("prompt"), values.pop("completion")
        values["latency_ms"] = round(self.latency_ms, 3)
        if self.ttft_ms is not None:
            values["ttft_ms"] = round(self.ttft_ms, 3)
        return {"event": "access", **{k: v for k, v in values.items() if v is not None}}


def log_access(record: AccessRecord, include_text: bool = False) -> None:
    """Writes the access record (INFO, on :data:`ACCESS_LOGGER`).

    The fields travel in ``ray_serve_extra_fields``, which Ray's JSON formatter spreads into the
    line's top-level keys; ``serve_access_log`` makes Serve's ``enable_access_log: false`` drop
    these records along with its own access lines.
    """
    fields = record.fields(include_text)
    logging.getLogger(ACCESS_LOGGER).info(
        "%s %s %s %.1fms", record.method, record.path, record.status, record.latency_ms,
        extra={"ray_serve_extra_fields": fields, "serve_access_log": True},
    )


# The access record of the request being served (set by AccessLogMiddleware; the pipeline adds to
# it with note()). NOTE: tasks started while serving a request copy the context, so they see the
# same record object.
_current: ContextVar[AccessRecord | None] = ContextVar("mistral_serve_access", default=None)


def note(**fields: Any) -> None:
    """Adds fields to the current request's access record (no-op outside a logged request)."""
    record = _current.get()
    if record is None:
        return
    for name, value in fields.items():
        setattr(record, name, value)


class AccessLogMiddleware:
    """ASGI middleware: one access record per API request, written when the response ends.

    The status comes from the response itself; what only the pipeline knows (team, tokens,
    cache, time to first token) it adds with :func:`note`. A streamed response is logged after
    its last byte, so its record has the whole stream's counts.

    Args:
        app: The ASGI app (the gateway's FastAPI app).
        include_text: Whether records carry prompt and completion text.
        prefix: Paths logged (health checks and the admin API are not).
    """

    def __init__(self, app: Any, include_text: bool = False, prefix: str = "/v1/") -> None:
        self.app = app
        self.include_text = include_text
        self.prefix = prefix

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = api_path(scope)
        if scope["type"] != "http" or not path.startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        record = AccessRecord(method=scope["method"], path=path, status=500)
        token = _current.set(record)
        started = time.monotonic()

        async def watch(message: dict) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            _current.reset(token)
            record.latency_ms = (time.monotonic() - started) * 1000
            log_access(record, self.include_text)


def api_path(scope: dict) -> str:
    """The request's path within the app: without the application's route prefix (``root_path``),
    which Ray Serve keeps at the front of ``path`` as ASGI servers do."""
    return str(scope.get("path", "")).removeprefix(str(scope.get("root_path", "")))


def use_serve_log_handlers(names: tuple[str, ...] = PACKAGE_LOGGERS) -> bool:
    """Sends the records of this project's loggers to Ray Serve's handlers in this replica.

    Call it from a deployment's constructor (Serve configures its logger before). Outside a
    replica (no handlers on ``ray.serve``) it changes nothing.

    Returns:
        Whether Serve's handlers were found and attached.
    """
    serve_logger = logging.getLogger(SERVE_LOGGER)
    if not serve_logger.handlers:
        return False
    for name in names:
        logger = logging.getLogger(name)
        logger.handlers = list(serve_logger.handlers)
        logger.setLevel(serve_logger.level)
        # NOTE: not also to the root logger, which would print every record a second time.
        logger.propagate = False
    return True
