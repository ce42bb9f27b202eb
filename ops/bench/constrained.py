"""Constrained decoding overhead: output tok/s with and without a JSON-schema constraint.

The same prompts, the same number of concurrent sequences (16 by default) in the same
:class:`~serve.engine.batching.BatchingEngine`, greedy: once free, once every sequence
constrained by a JSON schema that stays open for the whole run (an unbounded JSON string, so each
step pays the grammar's per-token mask like a long structured answer does). Both runs produce
exactly ``tokens`` tokens per sequence; the ratio of their output tok/s is the overhead.

Run: ``python -m ops.bench.constrained [--tokens 64] [--concurrency 16]`` (also part of ``make bench``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import torch

from serve.engine.batching import BatchingEngine
from serve.engine.types import EngineRequest, SamplingParams

from .engine_compare import load_tiny
from .prompts import PROMPTS

# A string that cannot close within the run: the grammar is live at every step and every sequence
# makes exactly `tokens` tokens, as in the free run (a closing schema would shrink the batch early).
OPEN_SCHEMA = json.dumps({"type": "string", "minLength": 100_000})


async def _run(engine: BatchingEngine, prompts: list[tuple[int, ...]], tokens: int, schema: str | None) -> int:
    async def one(index: int, ids: tuple[int, ...]) -> int:
        sampling = SamplingParams(max_tokens=tokens, temperature=0, ignore_eos=schema is None, json_schema=schema)
        return sum([o.num_tokens async for o in engine.generate(EngineRequest(f"b{index}", ids, sampling))])

    return sum(await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts))))


def compare(tokens: int = 64, concurrency: int = 16, rounds: int = 3, model_dir: str | None = None) -> dict:
    """Output tok/s free and constrained, run in adjacent pairs; the overhead is the median of the
    pairs' ratios (robust to the drift of other load on a shared machine)."""
    from serve.prompts.loader import load_prompt_encoder

    model, tokenizer, source = load_tiny(model_dir)
    encoder = load_prompt_encoder(source)
    prompts = [tuple(encoder.encode_chat([{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}]))
               for i in range(concurrency)]
    engine = BatchingEngine(model, tokenizer, max_batch_size=concurrency, max_model_len=2048).start()
    pairs = []
    try:
        asyncio.run(_run(engine, prompts, 4, OPEN_SCHEMA))  # warm-up: the grammar tokenizer, kernels
        for _ in range(rounds):
            pair = {}
            for name, schema in (("free", None), ("constrained", OPEN_SCHEMA)):
                started = time.perf_counter()
                produced = asyncio.run(_run(engine, prompts, tokens, schema))
                pair[name] = round(produced / (time.perf_counter() - started), 1)
                pair[f"{name}_tokens"] = produced
            pairs.append(pair)
    finally:
        engine.stop()
    ratios = sorted(p["constrained"] / p["free"] for p in pairs)
    ratio = ratios[len(ratios) // 2]
    return {"tokens": tokens, "concurrency": concurrency, "threads": torch.get_num_threads(), "pairs": pairs,
            "median_ratio": round(ratio, 3), "overhead_pct": round(100 * (1 - ratio), 1)}


def format_report(result: dict) -> str:
    """A side-by-side line for the summary."""
    pairs = ", ".join(f"{p['free']}/{p['constrained']}" for p in result["pairs"])
    return (f"constrained decoding @ concurrency {result['concurrency']} (free/constrained tok/s: {pairs}): "
            f"median ratio {result['median_ratio']} (overhead {result['overhead_pct']}%)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args(argv)
    result = compare(args.tokens, args.concurrency)
    print(json.dumps(result, indent=2))
    print(format_report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
