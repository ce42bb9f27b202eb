"""Loading a causal LM and its tokenizer with transformers, from a hub id or a local path."""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import EngineConfig, ModelConfig

logger = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ModelUnavailableError(RuntimeError):
    """The model's files cannot be found and may not be downloaded."""


@dataclass(frozen=True)
class RuntimeChoice:
    """Where and how the model runs."""

    device: torch.device
    dtype: torch.dtype
    attn_implementation: str


def choose_runtime(engine: EngineConfig) -> RuntimeChoice:
    """Resolves the ``auto`` values of the engine config for this machine.

    bf16 with flash attention (or SDPA when flash-attn is not installed) on CUDA; fp32 with SDPA
    on CPU, where bf16 matmuls are slow on most processors.
    """
    cuda = torch.cuda.is_available()
    if engine.device == "cuda" and not cuda:
        raise ModelUnavailableError("engine.device is 'cuda' but no CUDA device is available")
    device = torch.device("cuda" if engine.device == "cuda" or (engine.device == "auto" and cuda) else "cpu")
    on_gpu = device.type == "cuda"
    dtype = _DTYPES[engine.dtype] if engine.dtype != "auto" else (torch.bfloat16 if on_gpu else torch.float32)
    attn = engine.attn_implementation
    if attn == "auto":
        has_flash = importlib.util.find_spec("flash_attn") is not None
        attn = "flash_attention_2" if on_gpu and has_flash and dtype != torch.float32 else "sdpa"
    return RuntimeChoice(device=device, dtype=dtype, attn_implementation=attn)


def resolve_model_source(model: ModelConfig, tiny_model_dir: Path) -> str:
    """The ``from_pretrained`` argument for this model: a local directory or a hub id.

    With ``tiny: true`` the project's tiny checkpoint is built in ``tiny_model_dir`` if missing.
    """
    if model.tiny:
        from ..tiny_model import make_tiny_model

        return str(make_tiny_model(tiny_model_dir))
    return model.id


def check_model_available(source: str, revision: str | None = None) -> None:
    """Fails fast when the model cannot be loaded without a download that is not allowed.

    Raises:
        ModelUnavailableError: offline mode is on and the hub id is not in the local cache.
    """
    if Path(source).is_dir():
        if not (Path(source) / "config.json").is_file():
            raise ModelUnavailableError(f"{source} is a directory without config.json: not a checkpoint")
        return
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() not in ("1", "true", "yes", "on"):
        return
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(repo_id=source, filename="config.json", revision=revision)
    if not isinstance(cached, str):
        raise ModelUnavailableError(
            f"Model '{source}' is not in the local Hugging Face cache and HF_HUB_OFFLINE=1 forbids "
            "downloading it. Either download it where the hub is reachable "
            f"(`hf download {source}`) and copy the cache (HF_HOME) here, set model.id to a local "
            "directory holding the checkpoint, or serve the tiny test checkpoint "
            "(`mistral-serve run --config serve/configs/local.yaml`)."
        )


def load_tokenizer(source: str, revision: str | None = None):
    """Loads the model's tokenizer (it carries the chat template)."""
    from transformers import AutoTokenizer

    check_model_available(source, revision)
    return AutoTokenizer.from_pretrained(source, revision=revision)


def load_model(source: str, runtime: RuntimeChoice, revision: str | None = None):
    """Loads the causal LM in inference mode on the chosen device."""
    from transformers import AutoModelForCausalLM

    check_model_available(source, revision)
    logger.info(
        "loading model %s on %s as %s with %s attention",
        source, runtime.device, runtime.dtype, runtime.attn_implementation,
    )
    model = AutoModelForCausalLM.from_pretrained(
        source,
        revision=revision,
        dtype=runtime.dtype,
        attn_implementation=runtime.attn_implementation,
    )
    # transformers types the decorated .to() so that mypy misreads its arguments.
    return model.to(runtime.device).eval()  # type: ignore[arg-type]


def load_model_config(source: str, revision: str | None = None):
    """Loads only the model's config (cheap: no weights), for the gateway's limits."""
    from transformers import AutoConfig

    check_model_available(source, revision)
    return AutoConfig.from_pretrained(source, revision=revision)


def context_length(model_config, configured: int | None) -> int:
    """The context limit: the configured one, else the model's position limit.

    Raises:
        ValueError: the configured limit exceeds what the model supports.
    """
    limit = int(model_config.max_position_embeddings)
    if configured is None:
        return limit
    if configured > limit:
        raise ValueError(f"engine.max_model_len {configured} exceeds the model's limit of {limit}")
    return configured
