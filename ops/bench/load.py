"""A streaming load sweep against the OpenAI-compatible API, through the official ``openai`` client.

For each concurrency level, that many workers send streamed chat completions back to back
(closed loop) until the level's request count is used up. Per level it reports time to first
token, inter-token latency and end-to-end latency (p50/p99), aggregate output tokens/s and the
error count. Requests sample (temperature 1 by default, like chat traffic) and send
``Cache-Control: no-cache``, so every one reaches the engine instead of the prompt cache.

The request count is bounded per level and every request has a timeout, so a sweep always ends.
It only targets loopback addresses unless ``--allow-remote`` is given.

Run against a running service (``mistral-serve run`` prints the URL and a demo key)::

    python -m ops.bench.load --base-url http://127.0.0.1:8000/v1 --api-key $OPENAI_API_KEY
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from serve.netutil import require_loopback

from .prompts import PROMPTS

DEFAULT_CONCURRENCIES = (1, 2, 4, 8, 16)
# Request i of a level uses prompt (i * stride) mod 16: a stride coprime to 16 walks the whole set
# in an order that mixes short and long prompts, so small levels are not all short prompts.
_PROMPT_STRIDE = 7


@dataclass(frozen=True)
class RequestStats:
    """What one streamed request measured (times in seconds; None where not measurable).

    Attributes:
        ttft_s: Send to the first chunk carrying content.
        itl_s: Mean gap between tokens of this request (see :func:`one_request`).
        e2e_s: Send to the end of the stream.
        completion_tokens: From the usage chunk.
        error: ``Type: message`` of a failed request.
    """

    ttft_s: float | None = None
    itl_s: float | None = None
    e2e_s: float | None = None
    completion_tokens: int = 0
    error: str | None = None


@dataclass
class LevelStats:
    """One concurrency level's summary (latencies in seconds)."""

    concurrency: int
    requests: int
    errors: int
    duration_s: float
    output_tokens: int
    output_tokens_per_s: float
    ttft_p50_s: float | None
    ttft_p99_s: float | None
    itl_p50_s: float | None
    itl_p99_s: float | None
    e2e_p50_s: float | None
    e2e_p99_s: float | None
    error_samples: list[str] = field(default_factory=list)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100, linear interpolation), or None without values.

    With fewer than 100 samples, p99 lies between the two largest values.
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def default_requests(concurrency: int, prompts: int = len(PROMPTS)) -> int:
    """Requests per level by default: every prompt once, and at least two rounds of the workers.

    With the 16 shipped prompts and levels 1-16 that is 96 requests; at 64 tokens each the
    whole sweep takes well under two minutes on the tiny checkpoint.
    """
    return max(prompts, 2 * concurrency)


def make_client(base_url: str, api_key: str, timeout_s: float):
    """An ``AsyncOpenAI`` client that connects directly (no proxy from the environment) and never retries."""
    import openai

    return openai.AsyncOpenAI(
        base_url=base_url,
        api_key=api_key,
        max_retries=0,  # a retry would hide an error and distort latencies
        timeout=timeout_s,
        http_client=openai.DefaultAsyncHttpxClient(trust_env=False, timeout=timeout_s),
    )


async def one_request(client, model: str, prompt: str, max_tokens: int, temperature: float) -> RequestStats:
    """Sends one streamed chat completion and times its chunks.

    Inter-token latency is computed per request as (last content chunk time - first content
    chunk time) / (completion_tokens - 1), with the token count from the usage chunk: a chunk
    may carry several tokens (the engine merges outputs that pile up while the gateway is busy),
    so gaps between chunks would overstate the time per token.
    """
    start = time.perf_counter()
    first = last = None
    tokens = content_chunks = 0
    try:
        stream = await client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": prompt}],
            max_tokens=max_tokens,
            temperature=temperature,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"Cache-Control": "no-cache"},
        )
        async for chunk in stream:
            now = time.perf_counter()
            choice = chunk.choices[0] if chunk.choices else None
            if choice is not None and choice.delta.content:
                first = first if first is not None else now
                last = now
                content_chunks += 1
            elif choice is not None and choice.finish_reason and first is None:
                # A sampled end-of-sequence as the very first token: an empty but valid answer
                # whose first (and only) token arrives with the finish chunk.
                first = last = now
            if chunk.usage is not None:
                tokens = chunk.usage.completion_tokens
    except Exception as error:  # noqa: BLE001 - every failure is counted, none stops the sweep
        return RequestStats(error=f"{type(error).__name__}: {str(error)[:200]}")
    end = time.perf_counter()
    if first is None:
        return RequestStats(e2e_s=end - start, completion_tokens=tokens, error="stream ended without a token")
    tokens = tokens or content_chunks  # without a usage chunk, at least one token per chunk
    itl = (last - first) / (tokens - 1) if tokens > 1 else None
    return RequestStats(ttft_s=first - start, itl_s=itl, e2e_s=end - start, completion_tokens=tokens)


async def run_level(
    client,
    model: str,
    concurrency: int,
    requests: int,
    max_tokens: int,
    temperature: float = 1.0,
    prompts: Sequence[str] = PROMPTS,
) -> LevelStats:
    """Keeps ``concurrency`` requests in flight until ``requests`` have been sent."""
    next_index = 0
    results: list[RequestStats] = []

    async def worker() -> None:
        nonlocal next_index
        while next_index < requests:
            index, next_index = next_index, next_index + 1
            prompt = prompts[(index * _PROMPT_STRIDE) % len(prompts)]
            results.append(await one_request(client, model, prompt, max_tokens, temperature))

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    duration = time.perf_counter() - start
    ok = [r for r in results if r.error is None]
    errors = [r.error for r in results if r.error is not None]
    output_tokens = sum(r.completion_tokens for r in ok)

    def pct(name: str, q: float) -> float | None:
        return percentile([getattr(r, name) for r in ok if getattr(r, name) is not None], q)

    return LevelStats(
        concurrency=concurrency,
        requests=len(results),
        errors=len(errors),
        duration_s=duration,
        output_tokens=output_tokens,
        output_tokens_per_s=output_tokens / duration,
        ttft_p50_s=pct("ttft_s", 50), ttft_p99_s=pct("ttft_s", 99),
        itl_p50_s=pct("itl_s", 50), itl_p99_s=pct("itl_s", 99),
        e2e_p50_s=pct("e2e_s", 50), e2e_p99_s=pct("e2e_s", 99),
        error_samples=sorted(set(errors))[:3],
    )


async def sweep(
    base_url: str,
    *,
    api_key: str = "unused",
    model: str | None = None,
    concurrencies: Sequence[int] = DEFAULT_CONCURRENCIES,
    requests_per_level: int | None = None,
    max_tokens: int = 64,
    temperature: float = 1.0,
    timeout_s: float = 120.0,
    allow_remote: bool = False,
) -> dict:
    """Runs every concurrency level in turn against one service.

    Args:
        base_url: The API root, e.g. ``http://127.0.0.1:8000/v1``.
        api_key: Bearer key sent with every request.
        model: Served model name (default: the first one ``GET /models`` lists).
        concurrencies: Levels, run in this order.
        requests_per_level: Requests per level (default: :func:`default_requests`).
        max_tokens: Completion limit of each request.
        temperature: Sampling temperature of each request.
        timeout_s: Client timeout of each request.
        allow_remote: Permit a non-loopback ``base_url``.

    Returns:
        A JSON-serialisable dict: the settings and ``levels``, one :class:`LevelStats` dict each.

    Raises:
        ValueError: ``base_url`` is not loopback and ``allow_remote`` is False.
    """
    require_loopback(base_url, allow_remote)
    client = make_client(base_url, api_key, timeout_s)
    try:
        if model is None:
            model = (await client.models.list()).data[0].id
        # One request first, not counted: the first call through the proxy and handles pays
        # one-off set-up costs that would otherwise land in the first level's TTFT.
        await one_request(client, model, PROMPTS[0], min(max_tokens, 8), temperature)
        levels = []
        for concurrency in concurrencies:
            requests = requests_per_level or default_requests(concurrency)
            levels.append(await run_level(client, model, concurrency, requests, max_tokens, temperature))
    finally:
        await client.close()
    return {
        "base_url": base_url,
        "model": model,
        "max_tokens": max_tokens,
        "temperature": temperature,
        "levels": [asdict(level) for level in levels],
    }


def format_table(result: dict) -> str:
    """A plain-text table of one :func:`sweep` result (latencies in milliseconds)."""

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:.0f}"

    header = f"{'conc':>5}{'reqs':>6}{'err':>5}{'tok/s':>9}{'TTFT p50':>10}{'p99':>7}{'ITL p50':>9}{'p99':>7}{'E2E p50':>9}{'p99':>7}"
    lines = [f"load sweep: {result['model']} at {result['base_url']}, max_tokens {result['max_tokens']} (ms)", header]
    for lv in result["levels"]:
        lines.append(
            f"{lv['concurrency']:>5}{lv['requests']:>6}{lv['errors']:>5}{lv['output_tokens_per_s']:>9.1f}"
            f"{ms(lv['ttft_p50_s']):>10}{ms(lv['ttft_p99_s']):>7}{ms(lv['itl_p50_s']):>9}{ms(lv['itl_p99_s']):>7}"
            f"{ms(lv['e2e_p50_s']):>9}{ms(lv['e2e_p99_s']):>7}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: run the sweep, print the table, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000/v1", help="API root (loopback)")
    parser.add_argument(
        "--api-key", default=os.environ.get("OPENAI_API_KEY", "unused"),
        help="bearer key (default: $OPENAI_API_KEY; mistral-serve run prints a demo key)",
    )
    parser.add_argument("--model", help="served model name (default: the first listed)")
    parser.add_argument("--concurrency", default="1,2,4,8,16", help="comma-separated levels (default 1,2,4,8,16)")
    parser.add_argument("--requests", type=int, help="requests per level (default: max(16, 2 x concurrency))")
    parser.add_argument("--max-tokens", type=int, default=64, help="completion limit (default 64)")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1)")
    parser.add_argument("--timeout", type=float, default=120.0, help="per-request timeout in s (default 120)")
    parser.add_argument("--allow-remote", action="store_true", help="permit a non-loopback base URL")
    parser.add_argument("--out", type=Path, help="also write the result as JSON here")
    args = parser.parse_args(argv)
    try:
        require_loopback(args.base_url, args.allow_remote)
    except ValueError as error:
        parser.error(str(error))
    result = asyncio.run(
        sweep(
            args.base_url,
            api_key=args.api_key,
            model=args.model,
            concurrencies=[int(c) for c in args.concurrency.split(",") if c.strip()],
            requests_per_level=args.requests,
            max_tokens=args.max_tokens,
            temperature=args.temperature,
            timeout_s=args.timeout,
            allow_remote=args.allow_remote,
        )
    )
    print(format_table(result))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
