"""Weight quantization of the served model (``model.quantization``: none, int8, int4).

Two well-kept libraries, one per device kind:

* CUDA: bitsandbytes through transformers' ``BitsAndBytesConfig`` (LLM.int8() for int8, NF4 with
  bf16 compute for int4), applied while the checkpoint loads, so a 7B model never sits in GPU
  memory unquantized.
* CPU: torchao weight-only quantization applied to the loaded model's linear layers (int8 per
  channel; int4 in groups of 32 values). It runs on any CPU, so CI tests the loading path on the
  tiny checkpoint.

Activations, the KV cache and attention stay in the model's float dtype.
"""

from __future__ import annotations

import logging

import torch

logger = logging.getLogger(__name__)

QUANTIZATION_MODES = ("none", "int8", "int4")
# int4 group size on CPU: the tiny checkpoint's smallest input dimension (32, head_dim) must divide
# by it; Mistral-7B's (4096) does too.
INT4_GROUP_SIZE = 32


class QuantizationUnavailableError(RuntimeError):
    """The library a quantization mode needs is not installed (``pip install '.[quant]'``)."""


def load_time_config(mode: str, device: torch.device, compute_dtype: torch.dtype):
    """The ``quantization_config`` for ``from_pretrained``, or None (none, or CPU: see :func:`quantize`)."""
    if mode == "none" or device.type != "cuda":
        return None
    try:
        import bitsandbytes  # type: ignore[import-not-found]  # noqa: F401 - fail here, not deep in loading
        from transformers import BitsAndBytesConfig
    except ImportError as exc:
        raise QuantizationUnavailableError(f"model.quantization={mode} on CUDA needs bitsandbytes") from exc
    if mode == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute_dtype)


def quantize(model, mode: str, device: torch.device):
    """Quantizes a loaded model's weights in place on CPU (torchao); a no-op otherwise.

    Raises:
        QuantizationUnavailableError: torchao is not installed.
        ValueError: unknown mode.
    """
    if mode not in QUANTIZATION_MODES:
        raise ValueError(f"unknown quantization {mode!r}; expected one of {QUANTIZATION_MODES}")
    if mode == "none" or device.type == "cuda":
        return model
    try:
        from torchao.quantization import (  # type: ignore[import-untyped]
            Int8WeightOnlyConfig,
            IntxWeightOnlyConfig,
            PerGroup,
            quantize_,
        )
    except ImportError as exc:
        raise QuantizationUnavailableError(f"model.quantization={mode} on CPU needs torchao") from exc
    config = (Int8WeightOnlyConfig() if mode == "int8"
              else IntxWeightOnlyConfig(weight_dtype=torch.int4,  # type: ignore[attr-defined]
                                   granularity=PerGroup(INT4_GROUP_SIZE)))
    quantize_(model, config, filter_fn=_quantizable(model))
    logger.info("quantized the model's linear weights to %s with torchao", mode)
    return model


def _quantizable(model):
    """Which modules to quantize: every linear layer, but an output head tied to the input
    embeddings (quantizing it would store a second copy beside the embedding it shares)."""
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    input_embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    tied = output is not None and input_embeddings is not None and output.weight is input_embeddings.weight

    def keep(module: torch.nn.Module, _fqn: str) -> bool:
        return isinstance(module, torch.nn.Linear) and not (tied and module is output)

    return keep


def quantize_built(model, mode: str, device: torch.device):
    """Quantizes an already built model with torchao on any device (the GPU script's random model).

    int4 uses torchao's CUDA int4 kernels (groups of 128) on CUDA, the CPU path elsewhere.
    """
    if mode == "none" or device.type != "cuda":
        return quantize(model, mode, torch.device("cpu") if device.type != "cuda" else device)
    try:
        from torchao.quantization import Int4WeightOnlyConfig, Int8WeightOnlyConfig, quantize_
    except ImportError as exc:
        raise QuantizationUnavailableError(f"quantization {mode} needs torchao") from exc
    quantize_(model, Int8WeightOnlyConfig() if mode == "int8" else Int4WeightOnlyConfig(group_size=128))
    return model


def weight_bytes(model) -> int:
    """Bytes of the model's parameters and buffers as stored (quantized tensors count packed)."""
    total = 0
    for tensor in list(model.parameters()) + list(model.buffers()):
        total += _stored_bytes(tensor)
    return total


def _stored_bytes(tensor: torch.Tensor) -> int:
    # torchao's tensor subclasses keep their data in inner tensors (qdata, scale, ...).
    flatten = getattr(tensor, "__tensor_flatten__", None)
    if flatten is not None and type(tensor) not in (torch.Tensor, torch.nn.Parameter):
        names, _ = flatten()
        return sum(_stored_bytes(getattr(tensor, name)) for name in names)
    return tensor.numel() * tensor.element_size()
