"""Engine-only throughput at several concurrencies, side by side in one run on one checkpoint.

For each concurrency level (default 1, 16, 32, 64) the same chat-templated prompts, greedy, each
exactly ``tokens`` new tokens (end-of-sequence ignored), go through:

a. transformers ``generate``, one request at a time (measured once: it does not batch);
b. our :class:`~serve.engine.batching.BatchingEngine`, all requests submitted at once;
c. vLLM's offline engine (``vllm.LLM``) on the same checkpoint, when vLLM is importable in this
   interpreter (it is not a dependency; see docs/scaling.md); otherwise reported as skipped.

Rounds are interleaved and the best of ``repeats`` is kept (other load on a shared machine only
slows a run down). The printed ratios are what the benchmark proves; absolute numbers depend on
the machine's other load.

Run: ``python -m ops.bench.engine_sweep [--levels 1,16,32,64] [--tokens 64] [--out sweep.json]``.
"""

from __future__ import annotations

import argparse
import atexit
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import torch

from serve.engine.batching import BatchingEngine

from .engine_compare import chat_prompts, load_tiny, one_at_a_time, through_engine

DEFAULT_LEVELS = (1, 16, 32, 64)


def _best(run: Callable[[], int], repeats: int) -> float:
    """Best tokens/s of ``repeats`` runs of ``run`` (which returns tokens produced)."""
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        produced = run()
        best = max(best, produced / (time.perf_counter() - start))
    return best


def vllm_runner(model_dir: str, max_batch: int, max_len: int,
                python: str | None = None) -> Callable[[list[list[int]], int], int] | None:
    """A function running prompts through vLLM's offline engine, or None when vLLM is unavailable.

    With ``python`` (the interpreter of vLLM's own virtual environment) vLLM runs in a subprocess
    (:mod:`ops.bench.vllm_worker`); without it, in this interpreter when importable.
    """
    if python is not None:
        return _subprocess_runner(python, model_dir, max_batch, max_len)
    try:
        from vllm import LLM
        from vllm import SamplingParams as VllmParams
        from vllm.inputs import TokensPrompt
    except ImportError:
        return None
    llm = LLM(model=model_dir, max_num_seqs=max_batch, max_model_len=max_len, dtype="float32", seed=0)

    def run(prompts: list[list[int]], tokens: int) -> int:
        params = VllmParams(max_tokens=tokens, min_tokens=tokens, ignore_eos=True, temperature=0)
        outputs = llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params, use_tqdm=False)
        return sum(len(o.outputs[0].token_ids) for o in outputs)

    return run


def _subprocess_runner(python: str, model_dir: str, max_batch: int, max_len: int):
    worker = Path(__file__).with_name("vllm_worker.py")
    process = subprocess.Popen([python, str(worker), model_dir, str(max_batch), str(max_len)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    atexit.register(_stop_worker, process)

    def answer() -> dict:
        while True:
            line = process.stdout.readline()  # vLLM may print its own lines first
            if not line:
                raise RuntimeError(f"the vLLM worker exited with {process.wait()}")
            if line.startswith("{"):
                return json.loads(line)

    answer()  # {"ready": true}

    def run(prompts: list[list[int]], tokens: int) -> int:
        process.stdin.write(json.dumps({"prompts": prompts, "tokens": tokens}) + "\n")
        process.stdin.flush()
        return answer()["tokens"]

    return run


def sweep(*, levels=DEFAULT_LEVELS, tokens: int = 64, threads: int | None = 2, repeats: int = 2,
          model_dir: str | Path | None = None, with_vllm: bool = True, vllm_python: str | None = None) -> dict:
    """Measures (a), (b) and (c) at each level; returns a JSON-serialisable dict.

    Raises:
        RuntimeError: the engine produced a different number of tokens than asked for.
    """
    model, tokenizer, source = load_tiny(model_dir)
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    top = max(levels)
    prompts = chat_prompts(tokenizer, top)
    max_len = max(len(p) for p in prompts) + tokens
    vllm = vllm_runner(source, top, max_len, vllm_python) if with_vllm else None
    if vllm is not None:
        vllm(prompts[:2], 2)  # warm-up
    engine = BatchingEngine(model, tokenizer, max_batch_size=top, max_model_len=max_len).start()
    rows = []
    try:
        with torch.inference_mode():
            one_at_a_time(model, tokenizer, prompts[:1], 2)  # warm-up: first-call costs
            single = _best(lambda: one_at_a_time(model, tokenizer, prompts[:4], tokens), 1)
        through_engine(engine, prompts[:2], 2)  # warm-up
        for level in levels:
            batch = prompts[:level]
            expected = level * tokens
            ours = _best(lambda b=batch, n=expected: _checked(through_engine(engine, b, tokens), n), repeats)
            theirs = _best(lambda b=batch: vllm(b, tokens), repeats) if vllm else None
            rows.append({"concurrency": level, "generate_one_at_a_time": single, "engine": ours, "vllm": theirs,
                         "engine_vs_generate": ours / single,
                         "engine_vs_vllm": None if theirs is None else ours / theirs})
    finally:
        engine.stop()
        torch.set_num_threads(previous)
    return {"model": source, "tokens_per_request": tokens, "torch_threads": threads, "repeats": repeats,
            "vllm": "measured" if vllm else "not installed", "levels": rows}


def _stop_worker(process: subprocess.Popen) -> None:
    """Ends the vLLM worker: end of input lets it exit cleanly (and reap its helper processes)."""
    if process.stdin is not None:
        process.stdin.close()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()


def _checked(produced: int, expected: int) -> int:
    if produced != expected:
        raise RuntimeError(f"engine produced {produced} tokens, expected {expected}")
    return produced


def format_report(result: dict) -> str:
    """The sweep as a plain-text table with the ratios side by side."""
    lines = [f"engine sweep: {result['tokens_per_request']} new tokens per request, "
             f"{result['torch_threads']} torch threads, best of {result['repeats']}; vLLM: {result['vllm']}",
             f"  {'conc':>5}{'generate 1x1':>14}{'engine':>10}{'vLLM':>10}{'engine/gen':>12}{'engine/vLLM':>13}"]
    for row in result["levels"]:
        vllm = "-" if row["vllm"] is None else f"{row['vllm']:.0f}"
        ratio = "-" if row["engine_vs_vllm"] is None else f"{row['engine_vs_vllm']:.2f}x"
        lines.append(f"  {row['concurrency']:>5}{row['generate_one_at_a_time']:>14.0f}{row['engine']:>10.0f}"
                     f"{vllm:>10}{row['engine_vs_generate']:>11.2f}x{ratio:>13}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: run the sweep, print it, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="1,16,32,64", help="concurrency levels (comma-separated)")
    parser.add_argument("--tokens", type=int, default=64, help="new tokens per request (default 64)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--repeats", type=int, default=2, help="measured rounds per level, best kept")
    parser.add_argument("--no-vllm", action="store_true", help="skip vLLM even when installed")
    parser.add_argument("--vllm-python", help="python of vLLM's own virtual environment (runs it in a subprocess)")
    parser.add_argument("--out", type=Path, help="also write the result as JSON here")
    args = parser.parse_args(argv)
    result = sweep(levels=[int(x) for x in args.levels.split(",") if x.strip()], tokens=args.tokens,
                   threads=args.threads, repeats=args.repeats, with_vllm=not args.no_vllm,
                   vllm_python=args.vllm_python)
    print(format_report(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def plot_on(ax, result: dict) -> None:
    """Draws the sweep on a matplotlib axis: tokens/s per method at each concurrency."""
    levels = [row["concurrency"] for row in result["levels"]]
    x = range(len(levels))
    series = [("generate_one_at_a_time", "generate, 1 at a time", "#999999"), ("engine", "our engine", "#d9822b"),
              ("vllm", "vLLM engine", "#6f8fbf")]
    width = 0.8 / len(series)
    for n, (key, label, color) in enumerate(series):
        values = [row[key] or 0.0 for row in result["levels"]]
        ax.bar([i + n * width for i in x], values, width, label=label, color=color)
    ax.set_xticks([i + width for i in x], [str(c) for c in levels])
    ax.set(title=f"Engine only, {result['tokens_per_request']} tokens/request (vLLM: {result['vllm']})",
           xlabel="concurrent requests", ylabel="tokens/s")
    ax.legend()
