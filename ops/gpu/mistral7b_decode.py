"""Decode throughput of the batching engine on Mistral-7B's exact architecture, on one CUDA GPU.

A prepared check for a CUDA machine that has no internet and no Ray: it needs only torch and
transformers (the project's version, >= 5.24) and this repository checkout. It builds
``MistralForCausalLM`` from a ``MistralConfig`` with Mistral-7B-Instruct-v0.3's real values and
random bf16 weights created directly on the GPU (no download, no 28 GB fp32 copy on the host),
runs :class:`serve.engine.batching.BatchingEngine` at concurrency 1, 8, 32 and 64 (prompts of
128 random tokens, 128 new tokens each, end-of-sequence ignored), and prints decode tokens/s next
to the memory-bandwidth bound: a decode step must read every weight once, so
``bandwidth / weight bytes`` bounds steps/s, and steps/s times the batch bounds tokens/s. It also
estimates the KV-cache bytes each step reads, which grow with batch and context.

Run from the repository root on the GPU machine::

    python ops/gpu/mistral7b_decode.py                       # SDPA, H200 bandwidth (4800 GB/s)
    python ops/gpu/mistral7b_decode.py --attn flash_attention_2 --bandwidth-gbs 3350   # H100 SXM
    python ops/gpu/mistral7b_decode.py --dry-run-cpu         # same code, tiny config, on a CPU

It imports nothing that imports Ray (only ``serve.engine.batching`` and its torch-only modules).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

if __package__ in (None, ""):
    # Run as a file: make this checkout's `serve` package importable without installing it
    # (installing the project would pull Ray, which the GPU machine does not have).
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch
import transformers
from transformers import MistralConfig, MistralForCausalLM

from serve.engine.batching import BatchingEngine
from serve.engine.types import EngineRequest, SamplingParams

DEFAULT_CONCURRENCY = (1, 8, 32, 64)
H200_BANDWIDTH_GBS = 4800.0
# Mistral v0.3 ids: <unk>=0 (also used as padding), <s>=1, </s>=2; random prompts avoid them.
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2


class StandInTokenizer:
    """The two things the engine needs from a tokenizer: ``decode`` and the special ids.

    The real Mistral tokenizer cannot be fetched (no hub access on the GPU machine), and the
    weights are random anyway, so text is meaningless: every token decodes to " x". Real
    detokenization costs microseconds per token, negligible next to a 7B forward step, so the
    measured throughput is the engine's.
    """

    eos_token_id = EOS_ID
    pad_token_id = PAD_ID
    bos_token_id = BOS_ID

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        """One " x" per token (special ids skipped when asked, as a real tokenizer would)."""
        special = (PAD_ID, BOS_ID, EOS_ID) if skip_special_tokens else ()
        return "".join(" x" for token in ids if token not in special)


def mistral_7b_config() -> MistralConfig:
    """Mistral-7B-Instruct-v0.3's architecture (its config.json values)."""
    return MistralConfig(
        vocab_size=32768,
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=128,
        hidden_act="silu",
        max_position_embeddings=32768,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
        sliding_window=None,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        pad_token_id=PAD_ID,
    )


def tiny_config() -> MistralConfig:
    """The same architecture scaled down, for ``--dry-run-cpu``."""
    config = mistral_7b_config()
    config.update({
        "vocab_size": 1024, "hidden_size": 64, "intermediate_size": 224, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 2048,
    })
    return config


def build_model(config: MistralConfig, device: torch.device, dtype: torch.dtype, attn: str):
    """Random weights, allocated and initialised on ``device`` in ``dtype``."""
    # NOTE: the device context must surround construction: built on the host first, the 7B model
    # would take 28 GB of fp32 host memory and minutes to initialise and copy.
    with torch.device(device):
        model = MistralForCausalLM._from_config(config, dtype=dtype, attn_implementation=attn)
    return model.eval()


@dataclass
class Level:
    """One concurrency level's measurements and bounds."""

    concurrency: int
    prefill_s: float  # submit to every sequence's first token (one batched prefill)
    decode_s: float  # from then to the last token
    decode_tokens_per_s: float
    e2e_tokens_per_s: float  # all new tokens over the whole run, prefill included
    kv_gb_per_step: float  # mean over the run
    bound_tokens_per_s: float  # weights only
    bound_with_kv_tokens_per_s: float
    fraction_of_bound: float


def weight_bytes_per_step(model) -> int:
    """Bytes a decode step reads from weights: all of them but the embedding table.

    The embedding lookup touches one row per sequence; every other matrix (the LM head included)
    is read whole once per step, whatever the batch size.
    """
    embedding = model.get_input_embeddings().weight
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    return total - embedding.numel() * embedding.element_size()


def kv_bytes_per_token(config: MistralConfig, dtype: torch.dtype) -> int:
    """Key and value bytes one cached token occupies across all layers."""
    head_dim = config.head_dim or config.hidden_size // config.num_attention_heads
    return 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * torch.finfo(dtype).bits // 8


async def _run(engine: BatchingEngine, prompts: list[tuple[int, ...]], new_tokens: int) -> tuple[float, float, float, int]:
    start = time.perf_counter()
    firsts: list[float] = []

    async def one(index: int, ids: tuple[int, ...]) -> int:
        request = EngineRequest(
            request_id=f"decode-{index}",
            prompt_token_ids=ids,
            sampling=SamplingParams(max_tokens=new_tokens, temperature=0, ignore_eos=True),
        )
        produced = 0
        async for output in engine.generate(request):
            if produced == 0 and output.num_tokens:
                firsts.append(time.perf_counter())
            produced += output.num_tokens
        return produced

    produced = sum(await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts))))
    return start, max(firsts), time.perf_counter(), produced


def measure_level(
    model, tokenizer, concurrency: int, prompt_tokens: int, new_tokens: int, bandwidth_gbs: float, seed: int = 0
) -> Level:
    """Runs ``concurrency`` sequences at once through a fresh engine (after one short warm-up)."""
    generator = torch.Generator().manual_seed(seed + concurrency)
    vocab = model.config.vocab_size
    prompts = [tuple(torch.randint(3, vocab, (prompt_tokens,), generator=generator).tolist()) for _ in range(concurrency)]
    engine = BatchingEngine(
        model, tokenizer,
        max_batch_size=concurrency,
        max_model_len=prompt_tokens + new_tokens,
        # One prefill for the whole batch, so the decode phase is all sequences in lockstep.
        max_prefill_tokens=max(8192, concurrency * prompt_tokens),
    ).start()
    try:
        asyncio.run(_run(engine, prompts, min(new_tokens, 4)))  # warm-up: kernels, allocator
        start, first, end, produced = asyncio.run(_run(engine, prompts, new_tokens))
    finally:
        engine.stop()
    if produced != concurrency * new_tokens:
        raise RuntimeError(f"produced {produced} tokens, expected {concurrency * new_tokens}")
    decode_s = end - first
    decode_tps = concurrency * (new_tokens - 1) / decode_s if new_tokens > 1 else float("nan")
    weights = weight_bytes_per_step(model)
    mean_context = prompt_tokens + new_tokens / 2
    kv = concurrency * mean_context * kv_bytes_per_token(model.config, next(model.parameters()).dtype)
    bandwidth = bandwidth_gbs * 1e9
    bound = bandwidth / weights * concurrency
    return Level(
        concurrency=concurrency,
        prefill_s=first - start,
        decode_s=decode_s,
        decode_tokens_per_s=decode_tps,
        e2e_tokens_per_s=produced / (end - start),
        kv_gb_per_step=kv / 1e9,
        bound_tokens_per_s=bound,
        bound_with_kv_tokens_per_s=bandwidth / (weights + kv) * concurrency,
        fraction_of_bound=decode_tps / bound,
    )


def format_report(info: dict, levels: list[Level]) -> str:
    """The printed report: environment, then one row per concurrency level."""
    lines = [f"{key}: {value}" for key, value in info.items()]
    lines.append(
        f"{'concurrency':>11} {'prefill_s':>9} {'decode_tok/s':>12} {'e2e_tok/s':>10} {'kv_GB/step':>10} "
        f"{'bound_tok/s':>11} {'bound+kv_tok/s':>14} {'of_bound':>8}"
    )
    for lv in levels:
        lines.append(
            f"{lv.concurrency:>11} {lv.prefill_s:>9.3f} {lv.decode_tokens_per_s:>12.1f} {lv.e2e_tokens_per_s:>10.1f} "
            f"{lv.kv_gb_per_step:>10.3f} {lv.bound_tokens_per_s:>11.0f} {lv.bound_with_kv_tokens_per_s:>14.0f} "
            f"{lv.fraction_of_bound:>7.1%}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: build the model, measure every level, print the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attn", choices=("sdpa", "flash_attention_2"), default="sdpa", help="attention kernel")
    parser.add_argument("--bandwidth-gbs", type=float, default=H200_BANDWIDTH_GBS,
                        help="GPU memory bandwidth in GB/s for the bound (default 4800, H200)")
    parser.add_argument("--concurrency", default=",".join(map(str, DEFAULT_CONCURRENCY)),
                        help="comma-separated levels (default 1,8,32,64)")
    parser.add_argument("--prompt-tokens", type=int, help="random prompt length (default 128; dry run 16)")
    parser.add_argument("--new-tokens", type=int, help="new tokens per sequence (default 128; dry run 8)")
    parser.add_argument("--dry-run-cpu", action="store_true",
                        help="run the same code on a tiny config on the CPU (to test this script)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)

    if int(transformers.__version__.split(".")[0]) < 5:
        parser.error(f"transformers {transformers.__version__} is too old: the engine needs >= 5.24")
    if args.dry_run_cpu:
        device, dtype, config = torch.device("cpu"), torch.float32, tiny_config()
        torch.set_num_threads(1)  # small shared CPUs: more OpenMP threads than free cores crawl
        prompt_tokens, new_tokens = args.prompt_tokens or 16, args.new_tokens or 8
    else:
        if not torch.cuda.is_available():
            parser.error("no CUDA device (use --dry-run-cpu to test the script on a CPU)")
        device, dtype, config = torch.device("cuda"), torch.bfloat16, mistral_7b_config()
        prompt_tokens, new_tokens = args.prompt_tokens or 128, args.new_tokens or 128
    levels_wanted = [int(c) for c in args.concurrency.split(",") if c.strip()]

    torch.manual_seed(0)
    built = time.perf_counter()
    model = build_model(config, device, dtype, args.attn)
    build_s = time.perf_counter() - built
    params = sum(p.numel() for p in model.parameters())
    info = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.processor() or platform.machine()})",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "model": f"MistralForCausalLM, Mistral-7B-v0.3 architecture{' (tiny dry-run config)' if args.dry_run_cpu else ''}, "
                 f"{params / 1e6:,.1f}M params, random {str(dtype).removeprefix('torch.')} weights, {args.attn} attention",
        "model_build_s": f"{build_s:.1f}",
        "weights_GB_per_decode_step": f"{weight_bytes_per_step(model) / 1e9:.3f}",
        "kv_cache_bytes_per_token": kv_bytes_per_token(config, dtype),
        "bandwidth_GBps": args.bandwidth_gbs,
        "max_decode_steps_per_s": f"{args.bandwidth_gbs * 1e9 / weight_bytes_per_step(model):.0f} "
                                  "(bandwidth / weight bytes; x batch = bound_tok/s)",
        "workload": f"{prompt_tokens} random prompt tokens, {new_tokens} new tokens per sequence, greedy, EOS ignored",
    }
    levels = []
    for concurrency in levels_wanted:
        print(f"measuring concurrency {concurrency} ...", file=sys.stderr, flush=True)
        levels.append(measure_level(model, StandInTokenizer(), concurrency, prompt_tokens, new_tokens, args.bandwidth_gbs))
    if device.type == "cuda":
        info["peak_memory_GB"] = f"{torch.cuda.max_memory_allocated(device) / 1e9:.2f}"
    else:
        info["peak_memory_GB"] = "n/a on CPU"
    print(format_report(info, levels), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"info": info, "levels": [asdict(lv) for lv in levels]}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
