"""The observability sections of the deployment config: structured logs and tracing.

Kept apart from :mod:`serve.config` (which re-exports them) so each module stays short; the
strict base of every config section lives here too.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class StrictConfig(BaseModel):
    """Base of every deployment-config section."""

    # Typos in a deployment file must fail loudly, unlike unknown fields in API requests.
    model_config = ConfigDict(extra="forbid")


class LoggingConfig(StrictConfig):
    """Logs of every replica: Ray Serve's ``logging_config`` plus what the access records carry."""

    encoding: Literal["JSON", "TEXT"] = Field(
        default="JSON", description="JSON: one object per line (Ray Serve's log files); TEXT: readable lines."
    )
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Least severe level logged.")
    access_log: bool = Field(
        default=True,
        description="Log one access record per request (request id, team, route, status, latencies, "
        "token counts) beside Ray Serve's own access lines.",
    )
    include_text: bool = Field(
        default=False,
        description="Put the prompt and completion text in access records. Off: text is never logged.",
    )

    def serve_logging_config(self) -> dict[str, Any]:
        """Ray Serve's ``logging_config`` (application level in the Serve config file)."""
        return {"encoding": self.encoding, "log_level": self.level, "enable_access_log": self.access_log}


class TracingConfig(StrictConfig):
    """OpenTelemetry tracing of the gateway's pipeline (needs the ``[otel]`` extra)."""

    enabled: bool = Field(default=False, description="Record a span per pipeline stage and export them.")
    exporter: Literal["otlp", "console"] = Field(
        default="otlp",
        description="otlp: OTLP over HTTP to `endpoint` (needs opentelemetry-exporter-otlp-proto-http); "
        "console: spans printed to the replica's log.",
    )
    endpoint: str | None = Field(
        default=None, description="OTLP traces URL (None: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or the SDK default)."
    )
    service_name: str = Field(default="mistral-serve", description="The service.name resource attribute.")
    sample_ratio: float = Field(
        default=1.0, ge=0, le=1, description="Share of requests traced (parent-based ratio sampling)."
    )
