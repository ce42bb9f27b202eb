"""The batching engine against plain transformers ``generate``, side by side in one run.

Three ways to produce the same work (the same chat-templated prompts, greedy, exactly
``tokens`` new tokens each) on the same model in the same process:

a. one request at a time through ``model.generate`` (what a naive server does);
b. one static batch through ``model.generate`` with left padding (the throughput ceiling of
   plain transformers, but every request waits for the whole batch);
c. our :class:`~serve.engine.batching.BatchingEngine` with every request submitted at once.

It prints output tokens/s of each and the ratios c/a and c/b. Ratios measured in one run are
what this benchmark proves; absolute numbers depend on the machine and its other load.

Run: ``python -m ops.bench.engine_compare [--tokens 128] [--concurrency 16] [--out results.json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from serve.engine.batching import BatchingEngine
from serve.engine.types import EngineRequest, SamplingParams

from .prompts import PROMPTS

# Warm-up runs use few tokens: they only need to pay the first-call costs (allocator growth,
# attention kernel selection, lazy initialisation) on the same prompt shapes, not the whole run.
WARMUP_TOKENS = 4


@dataclass(frozen=True)
class Throughput:
    """One measured way of generating.

    Attributes:
        output_tokens: New tokens produced over all requests.
        seconds: Wall-clock time of one measured run (warm-up excluded).
        tokens_per_s: ``output_tokens / seconds``.
    """

    output_tokens: int
    seconds: float
    tokens_per_s: float

    @classmethod
    def timed(cls, run: Callable[[], int]) -> Throughput:
        """Times ``run`` (which returns the number of tokens it generated)."""
        start = time.perf_counter()
        tokens = run()
        seconds = time.perf_counter() - start
        return cls(output_tokens=tokens, seconds=seconds, tokens_per_s=tokens / seconds)


def chat_prompts(tokenizer, count: int) -> list[list[int]]:
    """The first ``count`` benchmark prompts (cycled if more are needed), chat-templated."""
    texts = [PROMPTS[i % len(PROMPTS)] for i in range(count)]
    return [
        list(tokenizer.apply_chat_template([{"role": "user", "content": t}], return_dict=True)["input_ids"])
        for t in texts
    ]


def one_at_a_time(model, tokenizer, prompts: Sequence[list[int]], tokens: int) -> int:
    """Generates each prompt alone with ``model.generate``; returns the new tokens produced."""
    produced = 0
    for ids in prompts:
        input_ids = torch.tensor([ids], device=model.device)
        output = model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            do_sample=False,
            max_new_tokens=tokens,
            min_new_tokens=tokens,  # equal lengths in every method, whatever the model emits
            pad_token_id=tokenizer.pad_token_id,
        )
        produced += output.shape[1] - input_ids.shape[1]
    return produced


def static_batch(model, tokenizer, prompts: Sequence[list[int]], tokens: int) -> int:
    """Generates all prompts as one left-padded batch with ``model.generate``."""
    batch = tokenizer.pad({"input_ids": list(prompts)}, padding=True, padding_side="left", return_tensors="pt")
    input_ids = batch["input_ids"].to(model.device)
    output = model.generate(
        input_ids=input_ids,
        attention_mask=batch["attention_mask"].to(model.device),
        do_sample=False,
        max_new_tokens=tokens,
        min_new_tokens=tokens,
        pad_token_id=tokenizer.pad_token_id,
    )
    return (output.shape[1] - input_ids.shape[1]) * output.shape[0]


async def _engine_run(engine: BatchingEngine, prompts: Sequence[list[int]], tokens: int) -> int:
    async def one(index: int, ids: list[int]) -> int:
        request = EngineRequest(
            request_id=f"bench-{index}",
            prompt_token_ids=tuple(ids),
            sampling=SamplingParams(max_tokens=tokens, temperature=0, ignore_eos=True),
        )
        produced = 0
        async for output in engine.generate(request):
            produced += output.num_tokens
            if output.finish_reason not in (None, "length"):
                raise RuntimeError(f"engine request {index} ended with {output.finish_reason!r}")
        return produced

    return sum(await asyncio.gather(*(one(i, ids) for i, ids in enumerate(prompts))))


def through_engine(engine: BatchingEngine, prompts: Sequence[list[int]], tokens: int) -> int:
    """Submits all prompts to a running engine at once; returns the new tokens produced."""
    return asyncio.run(_engine_run(engine, prompts, tokens))


def load_tiny(model_dir: str | Path | None = None):
    """The tiny checkpoint's model and tokenizer, loaded as the local service loads them."""
    from serve.config import EngineConfig
    from serve.engine.loader import choose_runtime, load_model, load_tokenizer
    from serve.settings import Settings
    from serve.tiny_model import make_tiny_model

    source = str(make_tiny_model(model_dir or Settings().tiny_model_dir))
    runtime = choose_runtime(EngineConfig(device="cpu"))
    return load_model(source, runtime), load_tokenizer(source), source


def compare(
    model=None,
    tokenizer=None,
    *,
    tokens: int = 128,
    concurrency: int = 16,
    threads: int | None = 1,
    repeats: int = 2,
    model_dir: str | Path | None = None,
) -> dict:
    """Measures one-at-a-time ``generate``, a static batch and the engine on the same prompts.

    Args:
        model: A causal LM in eval mode (default: the tiny checkpoint).
        tokenizer: Its tokenizer (needed with ``model``).
        tokens: New tokens per request (forced: EOS is ignored in every method).
        concurrency: Requests; also the static batch size and the engine's ``max_batch_size``.
        threads: torch intra-op threads during the run (restored afterwards); None leaves them.
            One is right on small shared machines, where more OpenMP threads than free cores
            make matmuls many times slower and noisy.
        repeats: Measured rounds (each runs a, b and c once); the fastest run of each is kept.
        model_dir: Where the tiny checkpoint lives when ``model`` is not given.

    Returns:
        A JSON-serialisable dict: settings, the best :class:`Throughput` of each method (plus
        ``all_seconds`` of every round) under ``one_at_a_time``, ``static_batch`` and
        ``engine``, and the tokens/s ratios ``engine_vs_one_at_a_time`` and
        ``engine_vs_static_batch``.

    Raises:
        ValueError: ``tokens``, ``concurrency`` or ``repeats`` is below 1.
        RuntimeError: a method produced a different number of tokens than asked for.
    """
    if min(tokens, concurrency, repeats) < 1:
        raise ValueError("tokens, concurrency and repeats must be at least 1")
    source = getattr(getattr(model, "config", None), "_name_or_path", None)
    if model is None:
        model, tokenizer, source = load_tiny(model_dir)
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        prompts = chat_prompts(tokenizer, concurrency)
        engine = BatchingEngine(
            model, tokenizer,
            max_batch_size=concurrency,
            max_model_len=max(len(p) for p in prompts) + tokens,
        ).start()
        try:
            methods: dict[str, Callable[[int], int]] = {
                "one_at_a_time": lambda n: one_at_a_time(model, tokenizer, prompts, n),
                "static_batch": lambda n: static_batch(model, tokenizer, prompts, n),
                "engine": lambda n: through_engine(engine, prompts, n),
            }
            for run in methods.values():
                run(min(tokens, WARMUP_TOKENS))
            # Rounds of a, b, c interleaved, best of each kept: other load on a shared machine
            # only ever slows a run down, and interleaving spreads a burst of it over all three.
            runs: dict[str, list[Throughput]] = {name: [] for name in methods}
            for _ in range(repeats):
                for name, run in methods.items():
                    runs[name].append(Throughput.timed(functools.partial(run, tokens)))
        finally:
            engine.stop()
        used_threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(previous_threads)

    expected = tokens * concurrency
    for name, measured in runs.items():
        for result in measured:
            if result.output_tokens != expected:
                raise RuntimeError(f"{name} produced {result.output_tokens} tokens, expected {expected}")
    results = {name: max(measured, key=lambda r: r.tokens_per_s) for name, measured in runs.items()}
    engine_tps = results["engine"].tokens_per_s
    return {
        "model": source,
        "device": str(next(model.parameters()).device),
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "torch_threads": used_threads,
        "requests": concurrency,
        "new_tokens_per_request": tokens,
        "prompt_tokens": [len(p) for p in prompts],
        "repeats": repeats,
        **{
            name: {**asdict(result), "all_seconds": [r.seconds for r in runs[name]]}
            for name, result in results.items()
        },
        "engine_vs_one_at_a_time": engine_tps / results["one_at_a_time"].tokens_per_s,
        "engine_vs_static_batch": engine_tps / results["static_batch"].tokens_per_s,
    }


def format_report(result: dict) -> str:
    """A plain-text table of one :func:`compare` result."""
    lines = [
        f"engine comparison: {result['requests']} requests x {result['new_tokens_per_request']} new tokens, "
        f"prompts of {min(result['prompt_tokens'])}-{max(result['prompt_tokens'])} tokens, "
        f"{result['device']} {result['dtype']}, {result['torch_threads']} torch thread(s), "
        f"best of {result['repeats']}",
        f"  {'method':<28}{'tokens':>8}{'seconds':>10}{'tokens/s':>11}",
    ]
    labels = {
        "one_at_a_time": "(a) generate, one at a time",
        "static_batch": "(b) generate, static batch",
        "engine": "(c) BatchingEngine",
    }
    for key, label in labels.items():
        r = result[key]
        lines.append(f"  {label:<28}{r['output_tokens']:>8}{r['seconds']:>10.2f}{r['tokens_per_s']:>11.1f}")
    lines.append(
        f"  engine / one-at-a-time = {result['engine_vs_one_at_a_time']:.2f}x at concurrency {result['requests']}; "
        f"engine / static batch = {result['engine_vs_static_batch']:.2f}x"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: run the comparison, print it, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=128, help="new tokens per request (default 128)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests = batch size (default 16)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--repeats", type=int, default=2, help="measured rounds, best kept (default 2)")
    parser.add_argument("--model-dir", type=Path, help="tiny checkpoint directory (default: settings')")
    parser.add_argument("--out", type=Path, help="also write the result as JSON here")
    args = parser.parse_args(argv)
    result = compare(tokens=args.tokens, concurrency=args.concurrency, threads=args.threads,
                     repeats=args.repeats, model_dir=args.model_dir)
    print(format_report(result))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
