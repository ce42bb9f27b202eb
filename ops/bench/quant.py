"""Quantization modes side by side: weight memory, engine tokens/s, greedy agreement.

For each ``model.quantization`` mode (none, int8, int4) the checkpoint is loaded through the
service's own loader (:func:`serve.engine.loader.load_model`), the same prompts run greedily
through the :class:`~serve.engine.batching.BatchingEngine`, and the output tokens are compared
position by position with the unquantized model's: agreement is the share of positions, up to
each sequence's first divergence, where the quantized model chose the same token (after a
divergence the two continue from different texts, so later positions compare nothing).

On the tiny checkpoint's random weights the logits are nearly flat, so agreement is far lower
than on a trained 7B model; the number is for comparing modes, not a quality claim.

Run: ``python -m ops.bench.quant [--concurrency 16] [--tokens 32]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import torch

from serve.config import EngineConfig
from serve.engine.batching import BatchingEngine
from serve.engine.loader import choose_runtime, load_model, load_tokenizer
from serve.engine.quantization import weight_bytes
from serve.engine.types import EngineRequest, SamplingParams
from serve.settings import Settings
from serve.tiny_model import make_tiny_model

from .engine_compare import chat_prompts

MODES = ("none", "int8", "int4")


async def _generate(engine: BatchingEngine, prompts: list[list[int]], tokens: int) -> list[list[int]]:
    async def one(index: int, ids: list[int]) -> list[int]:
        request = EngineRequest(f"quant-{index}", tuple(ids),
                                SamplingParams(max_tokens=tokens, temperature=0, ignore_eos=True))
        return [t async for o in engine.generate(request) for t in o.token_ids]

    return list(await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts))))


def agreement(reference: list[list[int]], candidate: list[list[int]]) -> float:
    """Share of positions, up to each sequence's first divergence, that match the reference."""
    matched = total = 0
    for ref, cand in zip(reference, candidate):
        total += len(ref)
        for a, b in zip(ref, cand):
            if a != b:
                break
            matched += 1
    return matched / total if total else 1.0


def measure(*, modes=MODES, concurrency: int = 16, tokens: int = 32, threads: int | None = 2,
            model_dir: str | Path | None = None) -> dict:
    """Weight bytes, tokens/s and greedy agreement per mode (a JSON-serialisable dict)."""
    source = str(make_tiny_model(model_dir or Settings().tiny_model_dir))
    tokenizer = load_tokenizer(source)
    runtime = choose_runtime(EngineConfig(device="cpu"))
    prompts = chat_prompts(tokenizer, concurrency)
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    rows, reference = [], None
    try:
        for mode in modes:
            model = load_model(source, runtime, quantization=mode)
            engine = BatchingEngine(model, tokenizer, max_batch_size=concurrency,
                                    max_model_len=max(map(len, prompts)) + tokens).start()
            try:
                asyncio.run(_generate(engine, prompts[:2], 2))  # warm-up
                start = time.perf_counter()
                outputs = asyncio.run(_generate(engine, prompts, tokens))
                seconds = time.perf_counter() - start
            finally:
                engine.stop()
            reference = reference or outputs
            rows.append({"mode": mode, "weight_bytes": weight_bytes(model),
                         "tokens_per_s": sum(map(len, outputs)) / seconds,
                         "greedy_agreement": agreement(reference, outputs)})
    finally:
        torch.set_num_threads(previous)
    return {"model": source, "device": str(runtime.device), "concurrency": concurrency,
            "tokens_per_request": tokens, "modes": rows}


def format_report(result: dict) -> str:
    """A plain-text table of :func:`measure`'s result."""
    base = result["modes"][0]
    lines = [f"quantization on {result['device']}: {result['concurrency']} requests x "
             f"{result['tokens_per_request']} tokens",
             f"  {'mode':<6}{'weights MiB':>13}{'vs none':>9}{'tokens/s':>10}{'vs none':>9}{'greedy agree':>14}"]
    for row in result["modes"]:
        lines.append(f"  {row['mode']:<6}{row['weight_bytes'] / 2**20:>13.2f}"
                     f"{row['weight_bytes'] / base['weight_bytes']:>8.2f}x{row['tokens_per_s']:>10.0f}"
                     f"{row['tokens_per_s'] / base['tokens_per_s']:>8.2f}x{row['greedy_agreement']:>13.1%}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: measure every mode, print, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--out", type=Path, help="also write the result as JSON here")
    args = parser.parse_args(argv)
    result = measure(concurrency=args.concurrency, tokens=args.tokens)
    print(format_report(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def plot_on(ax, result: dict) -> None:
    """Draws tokens/s per quantization mode, annotated with weight memory and agreement."""
    rows = result["modes"]
    bars = ax.bar([r["mode"] for r in rows], [r["tokens_per_s"] for r in rows], color="#6f8fbf")
    ax.bar_label(bars, labels=[f"{r['weight_bytes'] / 2**20:.1f} MiB\n{r['greedy_agreement']:.0%} agree"
                               for r in rows])
    ax.set_ylim(0, max(r["tokens_per_s"] for r in rows) * 1.4)
    ax.set(title=f"Quantization ({result['device']}, {result['concurrency']} requests)", ylabel="tokens/s")
