"""The deployment config: one YAML file describes model, engine and deployments.

The same file feeds ``mistral-serve run``, Ray's ``serve run``/``serve deploy`` (through
:func:`serve.app.build_app`) and, later, the Helm chart's ``serveConfigV2``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, model_validator

from .config_observability import LoggingConfig, StrictConfig, TracingConfig

DEFAULT_MODEL_ID = "mistralai/Mistral-7B-Instruct-v0.3"




class ModelConfig(StrictConfig):
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
    quantization: Literal["none", "int8", "int4"] = Field(
        default="none",
        description="Weight quantization: int8/int4 use bitsandbytes on CUDA and torchao weight-only "
        "kernels on CPU (see docs/scaling.md for memory, speed and greedy agreement per mode).",
    )
    served_name: str = Field(
        default="mistral-7b-instruct",
        description="The `model` name clients send; also listed by GET /v1/models.",
    )
    prompt_format: Literal["auto", "mistral", "hf"] = Field(
        default="auto",
        description="How chat prompts are encoded: `mistral` with mistral-common (client text is always "
        "text; tools in Mistral's format), `hf` with the checkpoint's chat template, `auto`: `mistral` for "
        "a checkpoint shipping a mistral-common tokenizer or a Mistral hub id, else `hf`.",
    )


class AutoscalingConfig(StrictConfig):
    """Ray Serve autoscaling bounds for one deployment (the chosen numbers: serve/configs/mistral-7b.yaml)."""

    min_replicas: int = Field(default=1, ge=0, description="Fewest replicas kept running.")
    max_replicas: int = Field(default=1, ge=1, description="Most replicas the autoscaler may start.")
    target_ongoing_requests: float | None = Field(
        default=None,
        gt=0,
        description="Ongoing (running + queued) requests per replica the autoscaler aims at. None: "
        "derived, 3/4 of the replica's capacity (max_ongoing_requests / 2; the engine's batch), never "
        "Ray Serve's default of 2, which would scale a batching engine out at two sequences per GPU.",
    )
    upscale_delay_s: float = Field(default=30, ge=0, description="Sustained load before scaling up.")
    downscale_delay_s: float = Field(
        default=600, ge=0, description="Sustained idleness before scaling down."
    )
    look_back_period_s: float | None = Field(
        default=None, gt=0, description="Window over which load is averaged (None: Ray's 30 s)."
    )
    metrics_interval_s: float | None = Field(
        default=None,
        gt=0,
        description="How often replicas and handles report their load (None: Ray's 10 s). Deprecated "
        "by Ray but still honoured; lower it only for short test clusters.",
    )

    @model_validator(mode="after")
    def _bounds(self) -> AutoscalingConfig:
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas must not exceed max_replicas")
        return self


class BackpressureConfig(StrictConfig):
    """How a request is refused when every replica is full and the caller's queue is too."""

    status_code: Literal[503, 429] = Field(
        default=503,
        description="503 (the service is at capacity; clients and load balancers retry elsewhere) or "
        "429 (clients back off as from a rate limit). Either way with the OpenAI error envelope.",
    )
    retry_after_s: float = Field(
        default=1,
        ge=0,
        description="Retry-After seconds sent with the refusal: about the time for a batch slot to free.",
    )


class DeploymentOptions(StrictConfig):
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
    max_queued_requests: int | None = Field(
        default=None,
        ge=-1,
        description="Requests each caller (a gateway replica's handle, a proxy) queues for this "
        "deployment while every replica is full; one more is rejected at once with the backpressure "
        "status. None: derived, the replica's capacity (max_ongoing_requests / 2); -1: unbounded.",
    )
    backpressure: BackpressureConfig = Field(
        default_factory=lambda: BackpressureConfig(),
        description="The answer to a request rejected because the queue is full.",
    )
    graceful_shutdown_timeout_s: float = Field(
        default=30, ge=0, description="How long a stopping replica lets in-flight requests finish."
    )
    health_check_period_s: float = Field(default=10, gt=0, description="Seconds between health checks.")

    @model_validator(mode="after")
    def _target_within_capacity(self) -> DeploymentOptions:
        target = self.autoscaling.target_ongoing_requests if self.autoscaling else None
        if target is not None and self.max_ongoing_requests is not None and target > self.max_ongoing_requests:
            # Replicas would be full (and callers queueing) before the autoscaler saw its target.
            raise ValueError("autoscaling.target_ongoing_requests must not exceed max_ongoing_requests")
        return self

    def serve_options(self, default_max_ongoing: int) -> dict[str, Any]:
        """Keyword arguments for ``Deployment.options``.

        Unset numbers derive from one capacity C = max_ongoing_requests / 2 (for the engine, whose
        max_ongoing_requests defaults to twice its batch, C is the batch): the autoscaler aims at
        0.75 C ongoing requests per replica and each caller queues at most C more.
        """
        actor_options: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.resources:
            actor_options["resources"] = dict(self.resources)
        max_ongoing = self.max_ongoing_requests or default_max_ongoing
        capacity = max(1, max_ongoing // 2)
        options: dict[str, Any] = {
            "ray_actor_options": actor_options,
            "max_ongoing_requests": max_ongoing,
            "max_queued_requests": capacity if self.max_queued_requests is None else self.max_queued_requests,
            "backpressure_config": self.backpressure.model_dump(),
            "graceful_shutdown_timeout_s": self.graceful_shutdown_timeout_s,
            "health_check_period_s": self.health_check_period_s,
        }
        if self.autoscaling is not None:
            autoscaling = self.autoscaling.model_dump(exclude_none=True)
            autoscaling.setdefault("target_ongoing_requests", 0.75 * capacity)
            options["autoscaling_config"] = autoscaling
        else:
            options["num_replicas"] = self.num_replicas
        return options


class EngineConfig(StrictConfig):
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
        default=64, ge=1,
        description="Sequences decoded together in one step: the KV slots allocated at start "
        "(max_batch_size x min(max_model_len, sliding_window) tokens). Chosen from `make bench` "
        "(docs/scaling.md).",
    )
    max_model_len: int | None = Field(
        default=None, ge=16, description="Context limit (prompt + completion); None: the model's."
    )
    max_prefill_tokens: int = Field(
        default=512, ge=16,
        description="Prompt tokens prefilled per engine iteration, between two decode steps: longer "
        "prompts are prefilled in chunks, so running streams wait at most one chunk.",
    )
    prefix_cache_mb: int = Field(
        default=64, ge=0,
        description="Memory for the keys/values of shared prompt prefixes (policy system prompts); "
        "0 disables prefix caching.",
    )
    cuda_graphs: bool = Field(
        default=False,
        description="CUDA only: decode with static shapes under torch.compile(mode='reduce-overhead') "
        "(CUDA graphs). Ignored on CPU.",
    )
    torch_threads: int | None = Field(
        default=None, ge=1, description="CPU threads for torch in the engine (None: num_cpus)."
    )
    stall_timeout_s: float = Field(
        default=60,
        gt=0,
        description="The replica's health check fails when sequences are pending and the engine has "
        "made no progress (no token, no finished or new sequence) for this long: a model that stops "
        "answering (hung forward pass, stuck GPU) is replaced. Far above the slowest step (a full "
        "prefill). An idle replica proves progress with a one-token probe once per this period.",
    )
    fault_injection: bool = Field(
        default=False,
        description="TEST ONLY: lets EngineDeployment.inject_fault make the model stop answering, "
        "for fault-recovery tests. Never enable in a real deployment.",
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


class GatewayConfig(StrictConfig):
    """The OpenAI-compatible HTTP ingress."""

    max_choices: int = Field(default=8, ge=1, description="Largest `n` a request may ask for.")
    engine_first_output_timeout_s: float = Field(
        default=120,
        gt=0,
        description="A request with no engine output after this long (queued behind a full engine, or "
        "no replica left to take it) fails with 503 engine_unavailable instead of waiting forever; "
        "far above a healthy deployment's queueing plus prefill time.",
    )
    max_request_bytes: int = Field(
        default=2 * 1024 * 1024,
        ge=1024,
        description="Largest request body accepted; larger ones get 413 request_too_large before they "
        "are parsed or authenticated (a declared Content-Length at once, a chunked body as it arrives). "
        "2 MiB holds a full 8k-token context many times over; the chart's Ingress has its own limit.",
    )
    readiness_cache_s: float = Field(
        default=5.0,
        ge=0,
        description="How long /readyz reuses its last engine check (the probe is unauthenticated; "
        "concurrent probes share one check). Well under a kubelet's probe period.",
    )
    docs_enabled: bool = Field(
        default=False,
        description="Serve /docs, /redoc and /openapi.json. Off by default (production): they describe "
        "the whole surface to anyone; local.yaml turns them on.",
    )
    deployment: DeploymentOptions = Field(
        default_factory=lambda: DeploymentOptions(num_cpus=0.5),
        description="Ray Serve options of the Gateway deployment.",
    )

    def default_max_ongoing(self) -> int:
        """The gateway mostly waits on the engine, so one replica carries many requests."""
        return 256


class TenancyConfig(StrictConfig):
    """API keys, per-team quotas and usage accounting (state in Redis)."""

    auth_cache_ttl_s: float = Field(
        default=1.0, ge=0, description="How long a replica trusts a key lookup; bounds revocation delay."
    )
    stale_auth_max_s: float = Field(
        default=30,
        ge=0,
        le=30,
        description="While Redis is unreachable, keys seen valid this recently still work (at most 30 s: "
        "a revoked key keeps working at most this long during an outage; see docs/security.md).",
    )
    default_rpm: int = Field(default=600, ge=0, description="Requests per minute for teams without a limit (0: none).")
    default_tpm: int = Field(
        default=200_000, ge=0, description="Tokens per minute for teams without a limit (0: none)."
    )
    quota_on_redis_error: Literal["admit", "reject"] = Field(
        default="reject",
        description="When the quota check cannot reach Redis: reject with 503 quota_unavailable (the "
        "default: a shared service fails closed, no team can take unmetered capacity) or admit "
        "unmetered (single-tenant deployments that prefer availability).",
    )
    redis_timeout_s: float = Field(
        default=2.0,
        gt=0,
        description="Socket timeout of Redis calls. A timeout fails that call only and never opens the "
        "circuit breaker (a busy Redis is not an outage); connection failures do.",
    )
    accounting_buffer_max: int = Field(
        default=100_000,
        ge=1,
        description="Usage records and refunds a gateway replica keeps for retrying while Redis does not "
        "take them; beyond it they are dropped and counted (alert on any).",
    )


class CacheConfig(StrictConfig):
    """The exact-match prompt cache for deterministic requests (temperature 0 or a seed)."""

    enabled: bool = Field(default=True, description="Serve repeated deterministic requests from Redis.")
    ttl_s: int = Field(default=3600, ge=1, description="Lifetime of a cached response.")
    max_entries: int = Field(default=100_000, ge=1, description="Entries kept; the oldest are evicted.")
    max_entry_bytes: int = Field(default=256 * 1024, ge=1, description="Larger responses are not cached.")
    single_flight_timeout_s: float = Field(
        default=120, gt=0, description="How long identical requests wait for the one generating."
    )


class ModerationConfig(StrictConfig):
    """The moderation layer (``guardrails``): policies, the default one, audit, its deployment."""

    enabled: bool = Field(default=True, description="Run input and output rails on every request.")
    policies_dir: Path | None = Field(
        default=None, description="Directory of policy directories (None: the packaged guardrails/policies)."
    )
    default_policy: str = Field(default="default", description="Policy of teams that have none set.")
    audit_include_text: bool = Field(
        default=False, description="Put the checked text in audit events (off: prompts are never logged)."
    )
    deployment: DeploymentOptions = Field(
        default_factory=lambda: DeploymentOptions(num_cpus=0.5),
        description="Ray Serve options of the Moderation deployment.",
    )

    def default_max_ongoing(self) -> int:
        """Checks one replica runs at once.

        Offline rails take about a millisecond of CPU per check, so a replica answers roughly a
        thousand checks a second; 64 in flight bounds the queueing delay a check can add to ~64 ms
        while letting model-based checks (which wait on the engine, not the CPU) overlap.
        """
        return 64


class HttpConfig(StrictConfig):
    """Where ``mistral-serve run`` binds Ray Serve's HTTP proxy."""

    host: str = Field(default="127.0.0.1", description="Bind address.")
    port: int = Field(default=8000, ge=1, le=65535, description="Bind port.")


class AppConfig(StrictConfig):
    """A whole deployment of mistral-serve."""

    name: str = Field(default="mistral-serve", description="Ray Serve application name.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="The served model.")
    engine: EngineConfig = Field(default_factory=EngineConfig, description="The engine.")
    gateway: GatewayConfig = Field(default_factory=GatewayConfig, description="The HTTP gateway.")
    tenancy: TenancyConfig = Field(default_factory=TenancyConfig, description="Keys, quotas, usage.")
    cache: CacheConfig = Field(default_factory=CacheConfig, description="The prompt cache.")
    moderation: ModerationConfig = Field(default_factory=ModerationConfig, description="Input and output rails.")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Structured logs.")
    tracing: TracingConfig = Field(default_factory=TracingConfig, description="OpenTelemetry tracing.")
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
