"""Process settings, read from the environment (prefix ``MISTRAL_SERVE_``).

This is the only module that reads environment variables; everything else receives typed
config objects.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Settings for the CLI and the app builder."""

    model_config = SettingsConfigDict(env_prefix="MISTRAL_SERVE_", extra="ignore")

    config: Path | None = Field(
        default=None,
        description="Deployment YAML file. Unset: the CLI picks mistral-7b.yaml on a CUDA machine "
        "and local.yaml (tiny checkpoint, CPU) elsewhere.",
    )
    tiny_model_dir: Path = Field(
        default=Path.home() / ".cache" / "mistral-serve" / "tiny-mistral",
        description="Where the generated tiny Mistral checkpoint is written and loaded from.",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis (6.2+) or Valkey holding keys, quotas, usage and the prompt cache. Unset: "
        "`mistral-serve run` starts an embedded server and other commands use the local stack's.",
    )
    cache_redis_url: str | None = Field(
        default=None,
        description="A separate Redis for the prompt cache only (may run an evicting maxmemory-policy such "
        "as allkeys-lru). Unset: the cache shares MISTRAL_SERVE_REDIS_URL, whose Redis must run "
        "`noeviction` so that keys, quotas and usage are never evicted (docs/security.md).",
    )
    admin_token: str | None = Field(
        default=None, description="Bearer token of the /admin endpoints (unset: local stack's, or none)."
    )
    state_dir: Path = Field(
        default=Path(".mistral-serve"),
        description="Where a local stack keeps its embedded Redis and its connection file.",
    )
    http_host: str | None = Field(default=None, description="Overrides http.host of the YAML.")
    http_port: int | None = Field(default=None, description="Overrides http.port of the YAML.")
