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


@pytest.mark.parametrize("mode", ["int8", "int4"])
async def test_quantized_tiny_checkpoint_loads_and_serves(tiny_model_dir, tiny_model, mode):
    import asyncio

    from serve.config import EngineConfig
    from serve.engine.batching import BatchingEngine
    from serve.engine.loader import choose_runtime, load_model, load_tokenizer
    from serve.engine.quantization import weight_bytes
    from serve.engine.types import EngineRequest, SamplingParams

    runtime = choose_runtime(EngineConfig(device="cpu"))
    model = load_model(str(tiny_model_dir), runtime, quantization=mode)
    linear = model.model.layers[0].mlp.up_proj.weight
    assert type(linear) is not torch.nn.Parameter  # a torchao quantized tensor
    # The decoder's linear weights: int8 is about a quarter of fp32, int4 less. (The tied
    # embedding/output head stays as it is: quantizing the head would store a second copy.)
    assert weight_bytes(model.model.layers) < 0.5 * weight_bytes(tiny_model.model.layers)
    assert model.lm_head.weight is model.model.embed_tokens.weight
    engine = BatchingEngine(model, load_tokenizer(str(tiny_model_dir)), max_batch_size=2, max_model_len=64).start()
    try:
        async def one(ids):
            request = EngineRequest("q", ids, SamplingParams(max_tokens=5, temperature=0, ignore_eos=True))
            return [o async for o in engine.generate(request)][-1].finish_reason

        assert await asyncio.gather(one((1, 5, 6)), one((1, 7))) == ["length", "length"]
    finally:
        engine.stop()


def test_unknown_quantization_is_refused(tiny_model):
    from serve.engine.quantization import quantize

    with pytest.raises(ValueError):
        quantize(tiny_model, "int3", torch.device("cpu"))
