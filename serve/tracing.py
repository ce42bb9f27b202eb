"""OpenTelemetry tracing of the gateway's pipeline: a span per stage, off by default.

Spans are named ``mistral_serve.<stage>``: ``request`` (the root, one per API call) and, under
it, the pipeline stages (``authenticate``, ``validate``, ``admit``, ``cache_lookup``,
``input_rails``, ``generate``, ``output_rails``, ``account``). With tracing off nothing from
OpenTelemetry is imported and every stage is a no-op. Each gateway replica has its own tracer
provider (the process-wide global provider is left alone), built by :func:`build_tracing` from
the ``tracing`` section of the deployment config.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from .config import TracingConfig
from .extras import require
from .logs import api_path

PREFIX = "mistral_serve."


class OpenStage:
    """A stage span that outlives one block (a stream): ended explicitly with :meth:`end`."""

    def __init__(self, span: Any = None) -> None:
        self._span = span

    def end(self, **attributes: Any) -> None:
        """Ends the span, adding ``attributes`` (``None`` values are left out)."""
        if self._span is None:
            return
        self._span.set_attributes(_clean(attributes))
        self._span.end()
        self._span = None


class Tracing:
    """Stage spans of one gateway replica, or no-ops when tracing is off."""

    def __init__(self, tracer: Any = None, provider: Any = None) -> None:
        self._tracer = tracer
        self._provider = provider

    @property
    def enabled(self) -> bool:
        """Whether spans are recorded."""
        return self._tracer is not None

    @contextlib.contextmanager
    def stage(self, name: str, **attributes: Any) -> Iterator[Any]:
        """A span around a block, current inside it (stages started in it are its children).

        Yields:
            The span (``None`` when tracing is off); an exception leaving the block is recorded.
        """
        if self._tracer is None:
            yield None
            return
        with self._tracer.start_as_current_span(PREFIX + name, attributes=_clean(attributes)) as span:
            yield span

    def open_stage(self, name: str, **attributes: Any) -> OpenStage:
        """A child of the current span that is not made current (for a stage spanning a stream).

        NOTE: an async generator resumes in its consumer's context, so a span made current
        across its yields could not be detached cleanly; this one is only ended.
        """
        if self._tracer is None:
            return OpenStage()
        return OpenStage(self._tracer.start_span(PREFIX + name, attributes=_clean(attributes)))

    def flush(self, timeout_ms: int = 5000) -> None:
        """Exports the spans still buffered (tests, shutdown)."""
        if self._provider is not None:
            self._provider.force_flush(timeout_ms)

    def shutdown(self) -> None:
        """Flushes and stops the exporter."""
        if self._provider is not None:
            self._provider.shutdown()


class TracingMiddleware:
    """ASGI middleware: the root span (``mistral_serve.request``) of each API request.

    The pipeline's stage spans started while the request is served are its children; the span
    ends with the response's last byte (a stream's included) and carries the HTTP status.
    """

    def __init__(self, app: Any, tracing: Tracing, prefix: str = "/v1/") -> None:
        self.app = app
        self.tracing = tracing
        self.prefix = prefix

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = api_path(scope)
        if not self.tracing.enabled or scope["type"] != "http" or not path.startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        with self.tracing.stage("request", method=scope["method"], path=path) as span:

            async def watch(message: dict) -> None:
                if message["type"] == "http.response.start":
                    span.set_attribute(PREFIX + "status", message["status"])
                await send(message)

            await self.app(scope, receive, watch)


def _clean(attributes: dict[str, Any]) -> dict[str, Any]:
    return {f"{PREFIX}{key}": value for key, value in attributes.items() if value is not None}


def build_tracing(config: TracingConfig, exporter: Any = None) -> Tracing:
    """The replica's tracing from its config.

    Args:
        config: The ``tracing`` section of the deployment config.
        exporter: A span exporter to use instead of the configured one (tests pass the SDK's
            in-memory exporter); its spans are exported as each ends.

    Raises:
        serve.extras.MissingExtra: tracing is on and the ``[otel]`` extra is not installed.
    """
    if not config.enabled:
        return Tracing()
    sdk_trace = require("opentelemetry.sdk.trace", "otel")
    export = require("opentelemetry.sdk.trace.export", "otel")
    sampling = require("opentelemetry.sdk.trace.sampling", "otel")
    resources = require("opentelemetry.sdk.resources", "otel")
    provider = sdk_trace.TracerProvider(
        resource=resources.Resource.create({"service.name": config.service_name}),
        sampler=sampling.ParentBased(sampling.TraceIdRatioBased(config.sample_ratio)),
    )
    if exporter is not None:
        provider.add_span_processor(export.SimpleSpanProcessor(exporter))
    else:
        provider.add_span_processor(export.BatchSpanProcessor(_exporter(config)))
    return Tracing(provider.get_tracer("mistral_serve"), provider)


def _exporter(config: TracingConfig) -> Any:
    if config.exporter == "console":
        return require("opentelemetry.sdk.trace.export", "otel").ConsoleSpanExporter()
    otlp = require("opentelemetry.exporter.otlp.proto.http.trace_exporter", "otel")
    return otlp.OTLPSpanExporter(endpoint=config.endpoint) if config.endpoint else otlp.OTLPSpanExporter()
