"""Model loading: runtime choice and failing fast when weights cannot be had."""

from __future__ import annotations

import time

import pytest
import torch

from serve.config import EngineConfig
from serve.engine.loader import (
    ModelUnavailableError,
    check_model_available,
    choose_runtime,
    context_length,
    load_model,
    load_model_config,
)


def test_cpu_runs_fp32_with_sdpa():
    runtime = choose_runtime(EngineConfig(device="cpu"))
    assert (runtime.device.type, runtime.dtype, runtime.attn_implementation) == ("cpu", torch.float32, "sdpa")


def test_explicit_choices_are_kept():
    runtime = choose_runtime(EngineConfig(device="cpu", dtype="bfloat16", attn_implementation="eager"))
    assert (runtime.dtype, runtime.attn_implementation) == (torch.bfloat16, "eager")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU refusal")
def test_cuda_without_a_gpu_is_refused():
    with pytest.raises(ModelUnavailableError):
        choose_runtime(EngineConfig(device="cuda"))


def test_uncached_hub_id_offline_fails_fast_with_instructions():
    started = time.monotonic()
    with pytest.raises(ModelUnavailableError) as caught:
        check_model_available("mistralai/Mistral-7B-Instruct-v0.3")
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert "HF_HUB_OFFLINE" in message and "hf download" in message and "local.yaml" in message


def test_local_checkpoint_loads_through_from_pretrained(tiny_model_dir):
    model = load_model(str(tiny_model_dir), choose_runtime(EngineConfig(device="cpu")))
    assert type(model).__name__ == "MistralForCausalLM" and not model.training


def test_context_length_defaults_to_the_model_and_may_only_shrink(tiny_model_dir):
    config = load_model_config(str(tiny_model_dir))
    assert context_length(config, None) == 2048
    assert context_length(config, 512) == 512
    with pytest.raises(ValueError):
        context_length(config, 4096)


def test_directory_without_checkpoint_is_refused(tmp_path):
    with pytest.raises(ModelUnavailableError):
        check_model_available(str(tmp_path))
