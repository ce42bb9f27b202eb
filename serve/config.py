"""The deployment config: one YAML file describes model, engine and deployments.

The same file feeds ``mistral-serve run``, Ray's ``serve run``/``serve deploy`` (through
:func:`serve.app.build_app`) and, later, the Helm chart's ``serveConfigV2``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_MODEL_ID = "mistralai/Mistral-7B-Instruct-v0.3"


class _Strict(BaseModel):
    # Typos in a deployment file must fail loudly, unlike unknown fields in API requests.
    model_config = ConfigDict(extra="forbid")


class ModelConfig(_Strict):
    """Which model to serve and under what name."""

    id: str = Field(
        default=DEFAULT_MODEL_ID,
        description="Hugging Face hub id or local directory passed to from_pretrained.",
    )
    revision: str | None = Field(default=None, description="Hub revision (branch, tag or commit).")
    tiny: bool = Field(
        default=False,
        description="Serve the project's generated tiny Mistral checkpoint (random weights) instead "
        "of `id`; it is built on first use in MISTRAL_SERVE_TINY_MODEL_DIR.",
    )
    served_name: str = Field(
        default="mistral-7b-instruct",
        description="The `model` name clients send; also listed by GET /v1/models.",
    )


class AutoscalingConfig(_Strict):
    """Ray Serve autoscaling bounds for one deployment."""

    min_replicas: int = Field(default=1, ge=0, description="Fewest replicas kept running.")
    max_replicas: int = Field(default=1, ge=1, description="Most replicas the autoscaler may start.")
    target_ongoing_requests: float = Field(
        default=2, gt=0, description="Ongoing requests per replica the autoscaler aims at."
    )
    upscale_delay_s: float = Field(default=30, ge=0, description="Sustained load before scaling up.")
    downscale_delay_s: float = Field(
        default=600, ge=0, description="Sustained idleness before scaling down."
    )

    @model_validator(mode="after")
    def _bounds(self) -> AutoscalingConfig:
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas must not exceed max_replicas")
        return self


class DeploymentOptions(_Strict):
    """Placement and concurrency options of one Ray Serve deployment."""

    num_replicas: int = Field(default=1, ge=1, description="Fixed replica count when not autoscaling.")
    autoscaling: AutoscalingConfig | None = Field(
        default=None, description="Autoscaling bounds; replaces num_replicas when set."
    )
    num_cpus: float = Field(default=1, ge=0, description="CPUs reserved per replica.")
    num_gpus: float = Field(default=0, ge=0, description="GPUs reserved per replica.")
    resources: dict[str, float] = Field(
        default_factory=dict, description="Custom Ray resources reserved per replica."
    )
    max_ongoing_requests: int | None = Field(
        default=None, ge=1, description="Requests one replica handles at once (None: derived)."
    )
    max_queued_requests: int = Field(
        default=-1, description="Requests queued per caller before rejecting; -1 means unbounded."
    )
    graceful_shutdown_timeout_s: float = Field(
        default=30, ge=0, description="How long a stopping replica lets in-flight requests finish."
    )
    health_check_period_s: float = Field(default=10, gt=0, description="Seconds between health checks.")

    def serve_options(self, default_max_ongoing: int) -> dict[str, Any]:
        """Keyword arguments for ``Deployment.options``."""
        actor_options: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.resources:
            actor_options["resources"] = dict(self.resources)
        options: dict[str, Any] = {
            "ray_actor_options": actor_options,
            "max_ongoing_requests": self.max_ongoing_requests or default_max_ongoing,
            "max_queued_requests": self.max_queued_requests,
            "graceful_shutdown_timeout_s": self.graceful_shutdown_timeout_s,
            "health_check_period_s": self.health_check_period_s,
        }
        if self.autoscaling is not None:
            options["autoscaling_config"] = self.autoscaling.model_dump()
        else:
            options["num_replicas"] = self.num_replicas
        return options


class EngineConfig(_Strict):
    """How the engine runs the model."""

    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="auto: CUDA when available, else CPU."
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto", description="auto: bfloat16 on CUDA, float32 on CPU."
    )
    attn_implementation: Literal["auto", "sdpa", "flash_attention_2", "eager"] = Field(
        default="auto", description="auto: flash_attention_2 on CUDA when installed, else sdpa."
    )
    max_batch_size: int = Field(
        default=16, ge=1, description="Sequences decoded together in one step (batch slots)."
    )
    max_model_len: int | None = Field(
        default=None, ge=16, description="Context limit (prompt + completion); None: the model's."
    )
    max_prefill_tokens: int = Field(
        default=8192, ge=16, description="Prompt tokens admitted into one prefill step."
    )
    torch_threads: int | None = Field(
        default=None, ge=1, description="CPU threads for torch in the engine (None: num_cpus)."
    )
    deployment: DeploymentOptions = Field(
        default_factory=lambda: DeploymentOptions(num_cpus=1),
        description="Ray Serve options of the Engine deployment.",
    )

    def default_max_ongoing(self) -> int:
        """Ongoing requests per replica: the batch plus one batch waiting to join it.

        Ray Serve's default (5) would starve the batching loop; twice the batch keeps every slot
        busy while requests that overflow it wait on the replica instead of in the proxy.
        """
        return 2 * self.max_batch_size


class GatewayConfig(_Strict):
    """The OpenAI-compatible HTTP ingress."""

    max_choices: int = Field(default=8, ge=1, description="Largest `n` a request may ask for.")
    deployment: DeploymentOptions = Field(
        default_factory=lambda: DeploymentOptions(num_cpus=0.5),
        description="Ray Serve options of the Gateway deployment.",
    )

    def default_max_ongoing(self) -> int:
        """The gateway mostly waits on the engine, so one replica carries many requests."""
        return 256


class TenancyConfig(_Strict):
    """API keys, per-team quotas and usage accounting (state in Redis)."""

    auth_cache_ttl_s: float = Field(
        default=1.0, ge=0, description="How long a replica trusts a key lookup; bounds revocation delay."
    )
    stale_auth_max_s: float = Field(
        default=300, ge=0, description="While Redis is unreachable, keys seen valid this recently still work."
    )
    default_rpm: int = Field(default=600, ge=0, description="Requests per minute for teams without a limit (0: none).")
    default_tpm: int = Field(
        default=200_000, ge=0, description="Tokens per minute for teams without a limit (0: none)."
    )
    quota_on_redis_error: Literal["admit", "reject"] = Field(
        default="admit",
        description="When Redis is unreachable: admit (and count the failure) or reject with 503.",
    )


class CacheConfig(_Strict):
    """The exact-match prompt cache for deterministic requests (temperature 0 or a seed)."""

    enabled: bool = Field(default=True, description="Serve repeated deterministic requests from Redis.")
    ttl_s: int = Field(default=3600, ge=1, description="Lifetime of a cached response.")
    max_entries: int = Field(default=100_000, ge=1, description="Entries kept; the oldest are evicted.")
    max_entry_bytes: int = Field(default=256 * 1024, ge=1, description="Larger responses are not cached.")
    single_flight_timeout_s: float = Field(
        default=120, gt=0, description="How long identical requests wait for the one generating."
    )


class HttpConfig(_Strict):
    """Where ``mistral-serve run`` binds Ray Serve's HTTP proxy."""

    host: str = Field(default="127.0.0.1", description="Bind address.")
    port: int = Field(default=8000, ge=1, le=65535, description="Bind port.")


class AppConfig(_Strict):
    """A whole deployment of mistral-serve."""

    name: str = Field(default="mistral-serve", description="Ray Serve application name.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="The served model.")
    engine: EngineConfig = Field(default_factory=EngineConfig, description="The engine.")
    gateway: GatewayConfig = Field(default_factory=GatewayConfig, description="The HTTP gateway.")
    tenancy: TenancyConfig = Field(default_factory=TenancyConfig, description="Keys, quotas, usage.")
    cache: CacheConfig = Field(default_factory=CacheConfig, description="The prompt cache.")
    http: HttpConfig = Field(default_factory=HttpConfig, description="Local HTTP binding.")


def load_config(path: str | Path) -> AppConfig:
    """Reads and validates a deployment YAML file.

    Raises:
        FileNotFoundError: the file does not exist.
        pydantic.ValidationError: the file does not describe a valid deployment.
    """
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    return AppConfig.model_validate(data)


def packaged_config_path(name: str) -> Path:
    """Path of a config shipped in ``serve/configs`` (``local`` or ``mistral-7b``)."""
    return Path(__file__).parent / "configs" / f"{name}.yaml"
