"""Latency of the offline rails: mistral-serve's direct path against NeMo's LLMRails and IORails.

    python -m ops.moderation.bench                # full run (about a minute on 2 cores)
    python -m ops.moderation.bench --quick        # fewer iterations (smoke test)

For a ~500-token prompt (2,400 characters of English: Mistral's tokenizer averages 4-5 characters a
token), measured side by side in one process:

1. normalisation (guardrails.normalize.views) alone, on plain and on obfuscated text; each offline
   input rail of the ``default`` policy alone (its normalised views included), and all of them together, through
   ``Moderator.check_input`` (the request path), against the same policy run by NeMo's
   ``LLMRails.check_async`` (Colang runtime, the same actions);
2. the code injection output rail (NeMo's ``injection detection`` flow and YARA rules): compiled once
   here, against NeMo's own action, which compiles the rules on every call, via LLMRails and IORails;
3. a one-pattern ``regex check input`` rail, the case the issue measured at 15-25 ms per
   ``LLMRails.check``: via ``check`` (sync), ``check_async``, IORails, and a pre-compiled pattern.

Prints p50/p99 per check and the NeMo/direct ratio of p50s; writes ops/results/moderation_bench.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NEMO_GUARDRAILS_NO_USAGE_STATS", "1")  # no telemetry from LLMRails/IORails

RESULTS = Path(__file__).resolve().parents[1] / "results" / "moderation_bench.json"

_PARAGRAPH = (
    "The migration (ticket OPS-4821) ran on 2024-03-14 at 02:15 UTC; p99 latency rose from 180 ms to 2.4 s and "
    "3 of 12 pods restarted. Our team is preparing the quarterly reliability review for the payments platform. "
    "Please read the "
    "notes below and write a summary for the engineering leadership, grouped by theme, with one action item "
    "per theme and an owner where the notes name one. Keep the tone factual and avoid blaming individuals. "
    "The checkout service had two incidents: a slow database migration that held a lock for eleven minutes, "
    "and a misconfigured retry policy that amplified a partial outage of the fraud scoring API. "
)
_PII = "If anything is unclear, ask the on-call lead at dana.whitfield@northwind-payments.com. "


def prompt_500_tokens(with_finding: bool) -> str:
    """About 500 tokens of realistic prompt text (2,400 characters), optionally with one e-mail."""
    text = (_PARAGRAPH * 6)[:2400 - len(_PII)]
    return text + _PII if with_finding else text + "Thank you for the help with this summary!" * 2


def obfuscated(text: str) -> str:
    """The prompt with every tenth word in fullwidth letters and zero-width spaces inside words."""
    words = text.split(" ")
    for i in range(0, len(words), 10):
        words[i] = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in words[i])
    for i in range(5, len(words), 10):
        words[i] = "\u200b".join(words[i])
    return " ".join(words)


def _stats(samples: list[float]) -> dict:
    samples = sorted(samples)
    p99 = samples[min(len(samples) - 1, int(round(0.99 * (len(samples) - 1))))]
    return {"p50_ms": statistics.median(samples) * 1e3, "p99_ms": p99 * 1e3, "n": len(samples)}


async def _time_async(fn: Callable[[], Awaitable], iterations: int, warmup: int = 5) -> dict:
    for _ in range(warmup):
        await fn()
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - start)
    return _stats(samples)


def _time_sync(fn: Callable[[], object], iterations: int, warmup: int = 5) -> dict:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return _stats(samples)


def _policy_with_flows(policy, inputs: list[str], outputs: list[str]):
    """A copy of the policy's NeMo config running only the given flows."""
    config = policy.config.model_copy(deep=True)
    config.rails.input.flows = list(inputs)
    config.rails.output.flows = list(outputs)
    return config


async def run(iterations: int, nemo_iterations: int) -> list[dict]:
    """All measurements, as rows of the printed table."""
    import logging

    from nemoguardrails import LLMRails, RailsConfig
    from nemoguardrails.guardrails.iorails import IORails
    from nemoguardrails.rails.llm.options import RailType

    from guardrails.audit import AuditLog
    from guardrails.metrics import CountingMetrics
    from guardrails.moderator import Moderator
    from guardrails.nemo import register_actions
    from guardrails.policy import PACKAGED_POLICIES, PolicySet, load_policy

    logging.getLogger("nemoguardrails").setLevel(logging.ERROR)
    policy = load_policy(PACKAGED_POLICIES / "default")
    moderator = Moderator(
        PolicySet({"default": policy}, "default"), metrics=CountingMetrics(),
        audit=AuditLog(logger=logging.getLogger("bench.audit")),
    )
    logging.getLogger("bench.audit").disabled = True
    rows: list[dict] = []

    def row(check: str, path: str, stats: dict, baseline: dict | None = None) -> None:
        entry = {"check": check, "path": path, **stats}
        if baseline is not None:
            entry["ratio_vs_direct"] = stats["p50_ms"] / baseline["p50_ms"]
        rows.append(entry)
        ratio = f"{entry['ratio_vs_direct']:8.1f}x" if "ratio_vs_direct" in entry else "        -"
        print(f"{check:40s} {path:28s} {stats['p50_ms']:9.3f} {stats['p99_ms']:9.3f} {ratio}", flush=True)

    from guardrails.normalize import views

    async def fresh_check(text: str):
        # NOTE: normalised views are cached per text; clearing the cache makes every timed check pay
        # for normalisation, as a new request would.
        views.cache_clear()
        return await moderator.check_input(text)

    print(f"{'check (500-token prompt)':40s} {'path':28s} {'p50 ms':>9s} {'p99 ms':>9s} {'NeMo/direct':>9s}")
    texts = {False: prompt_500_tokens(False), True: prompt_500_tokens(True)}
    for label, text in (("ascii", texts[False]), ("fullwidth+zero-width", obfuscated(texts[False]))):
        norm = _time_sync(lambda: (views.cache_clear(), views(text)), iterations)
        row(f"normalisation views ({label})", "direct: normalize.views", norm)
    for with_finding in (False, True):
        text = texts[with_finding]
        label = "e-mail" if with_finding else "clean"
        messages = [{"role": "user", "content": text}]
        direct_all = await _time_async(lambda: fresh_check(text), iterations)
        row(f"all offline input rails ({label})", "direct: Moderator", direct_all)
        rails = register_actions(LLMRails(policy.config), policy)
        nemo_all = await _time_async(lambda: rails.check_async(messages, rail_types=[RailType.INPUT]), nemo_iterations)
        row(f"all offline input rails ({label})", "NeMo LLMRails.check_async", nemo_all, direct_all)
        if with_finding:
            continue
        for spec in policy.input_rails:
            direct = _time_sync(lambda: (views.cache_clear(), spec.offline.scan(text)), iterations)
            row(f"  {spec.name}", "direct: rail.scan", direct)
            single = register_actions(LLMRails(_policy_with_flows(policy, [spec.flow], [])), policy)
            nemo = await _time_async(lambda: single.check_async(messages, rail_types=[RailType.INPUT]), nemo_iterations)
            row(f"  {spec.name}", "NeMo LLMRails.check_async", nemo, direct)

    # Code injection on outputs: the same YARA rules, compiled once vs per call.
    answer = prompt_500_tokens(False)
    code = next(s for s in policy.output_rails if s.name == "code_injection")
    direct = _time_sync(lambda: code.offline.scan(answer), iterations)
    row("code_injection (output)", "direct: compiled once", direct)
    out_messages = [{"role": "user", "content": "Summarize."}, {"role": "assistant", "content": answer}]
    config = _policy_with_flows(policy, [], ["injection detection"])
    nemo_rails = LLMRails(config)
    nemo = await _time_async(
        lambda: nemo_rails.check_async(out_messages, rail_types=[RailType.OUTPUT]), nemo_iterations
    )
    row("code_injection (output)", "NeMo LLMRails.check_async", nemo, direct)
    io = IORails(config, _report_usage=False)
    await io.start()
    nemo = await _time_async(lambda: io.check_async(out_messages, rail_types=[RailType.OUTPUT]), nemo_iterations)
    row("code_injection (output)", "NeMo IORails.check_async", nemo, direct)
    await io.stop()

    # The reference case: one regex rail through NeMo.
    regex = RailsConfig.from_content(yaml_content=(
        "rails:\n  config:\n    regex_detection:\n      input:\n        patterns: ['[\\w.+-]+@[\\w-]+\\.[\\w.]+']\n"
        "  input:\n    flows: [regex check input]\n"
    ))
    compiled = regex.rails.config.regex_detection.input.compiled_patterns[0]
    direct = _time_sync(lambda: compiled.search(text), iterations)
    row("one regex rail (input)", "direct: pre-compiled pattern", direct)
    regex_rails = LLMRails(regex)
    sync = await asyncio.to_thread(
        _time_sync, lambda: regex_rails.check(messages, rail_types=[RailType.INPUT]), nemo_iterations
    )
    row("one regex rail (input)", "NeMo LLMRails.check (sync)", sync, direct)
    nemo = await _time_async(lambda: regex_rails.check_async(messages, rail_types=[RailType.INPUT]), nemo_iterations)
    row("one regex rail (input)", "NeMo LLMRails.check_async", nemo, direct)
    io = IORails(regex, _report_usage=False)
    await io.start()
    nemo = await _time_async(lambda: io.check_async(messages, rail_types=[RailType.INPUT]), nemo_iterations)
    row("one regex rail (input)", "NeMo IORails.check_async", nemo, direct)
    await io.stop()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few iterations (smoke test)")
    parser.add_argument("--iterations", type=int, default=None, help="timed runs per direct check")
    parser.add_argument("--nemo-iterations", type=int, default=None, help="timed runs per NeMo check")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON results")
    args = parser.parse_args(argv)
    iterations, nemo_iterations = (30, 10) if args.quick else (1000, 200)
    iterations = args.iterations or iterations
    nemo_iterations = args.nemo_iterations or nemo_iterations
    rows = asyncio.run(run(iterations, nemo_iterations))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"prompt_chars": len(prompt_500_tokens(False)), "rows": rows}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
