"""What keys, quotas and the prompt cache cost, and what the cache saves.

Two measurements, each printed side by side:

1. **Cache hit vs miss** over HTTP through the official client: the same deterministic requests
   first generated (miss), then repeated (hit); p50/p99 latency of each and the ratio.
2. **Gateway overhead per request**, in-process against the real Redis: authentication (with the
   deployed one-second key cache, and uncached), quota admission plus settlement, and the cache
   lookup, timed one by one and together.

Run against a running service (``mistral-serve run`` prints the base URL and a demo key; the
Redis URL is in ``.mistral-serve/local-stack.json``)::

    python -m ops.bench.tenancy --base-url URL --api-key KEY --redis-url REDIS_URL
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

from serve.cache import PromptCache, cache_key
from serve.config import CacheConfig, TenancyConfig
from serve.engine.types import EngineRequest, SamplingParams
from serve.redis_gate import RedisGate
from serve.tenancy.auth import Authenticator
from serve.tenancy.keys import KeyStore
from serve.tenancy.quotas import QuotaManager


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50 and p99 in milliseconds."""
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50_ms": pick(0.50) * 1000, "p99_ms": pick(0.99) * 1000}


async def cache_hit_vs_miss(base_url: str, api_key: str, model: str, requests: int, max_tokens: int) -> dict:
    """Latency of generated (miss) and replayed (hit) answers to the same requests."""
    from openai import AsyncOpenAI

    run_id = uuid.uuid4().hex[:8]
    prompts = [[{"role": "user", "content": f"bench {run_id} question {i}: describe the cache"}] for i in range(requests)]
    timings: dict[str, list[float]] = {"miss": [], "hit": []}
    async with AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=120) as client:
        for expected in ("miss", "hit"):
            for prompt in prompts:
                started = time.perf_counter()
                raw = await client.chat.completions.with_raw_response.create(
                    model=model, messages=prompt, max_tokens=max_tokens, temperature=0
                )
                elapsed = time.perf_counter() - started
                if raw.headers.get("x-cache") != expected:
                    raise RuntimeError(f"expected a cache {expected}, got {raw.headers.get('x-cache')}")
                timings[expected].append(elapsed)
    miss, hit = percentiles(timings["miss"]), percentiles(timings["hit"])
    return {"requests": requests, "max_tokens": max_tokens, "miss": miss, "hit": hit,
            "miss_over_hit_p50": miss["p50_ms"] / hit["p50_ms"]}


async def _time(operation: Callable[[], Awaitable[object]], iterations: int) -> list[float]:
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        await operation()
        samples.append(time.perf_counter() - started)
    return samples


async def gateway_overhead(redis_url: str, iterations: int) -> dict:
    """Per-request cost of the Redis-backed steps, each alone and all together."""
    gate = RedisGate(redis_url)
    store = KeyStore(gate.client)
    team = f"bench-{uuid.uuid4().hex[:6]}"
    api_key, _ = await store.create(team, rpm=0, tpm=10**9)
    header = f"Bearer {api_key}"
    deployed_auth = Authenticator(store, gate, TenancyConfig())
    uncached_auth = Authenticator(store, gate, TenancyConfig(auth_cache_ttl_s=0))
    quotas = QuotaManager(gate, TenancyConfig())
    cache = PromptCache(gate, CacheConfig())
    principal = await deployed_auth.authenticate(header)
    request = EngineRequest("bench", tuple(range(500)), SamplingParams(max_tokens=64, temperature=0))

    async def admit_and_settle() -> None:
        # Reserve prompt + max_tokens, then refund what a 32-token answer left unused.
        await quotas.settle(await quotas.admit(principal.team, 564), 532)

    async def cache_lookup() -> None:
        key = cache_key(salt=principal.team.salt, model="bench", policy_version="p", endpoint="chat",
                        stream=False, choices=[request])
        flight = await cache.acquire(key)
        await flight.finish(None)  # a miss that stores nothing, so every iteration misses

    async def everything() -> None:
        await deployed_auth.authenticate(header)
        await admit_and_settle()
        await cache_lookup()

    try:
        results = {
            "auth (1 s key cache, as deployed)": await _time(lambda: deployed_auth.authenticate(header), iterations),
            "auth (uncached: one Redis round trip)": await _time(lambda: uncached_auth.authenticate(header), iterations),
            "quota admit + settle": await _time(admit_and_settle, iterations),
            "cache lookup (miss, lock, release)": await _time(cache_lookup, iterations),
            "all of the above, per request": await _time(everything, iterations),
        }
        return {name: percentiles(samples) for name, samples in results.items()}
    finally:
        await gate.close()


def print_report(hit_miss: dict | None, overhead: dict | None) -> None:
    """Prints both measurements as tables."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if hit_miss is not None:
        table = Table("", "p50 ms", "p99 ms", title=f"prompt cache, {hit_miss['requests']} requests x {hit_miss['max_tokens']} tokens")
        for name in ("miss", "hit"):
            table.add_row(name, f"{hit_miss[name]['p50_ms']:.1f}", f"{hit_miss[name]['p99_ms']:.1f}")
        console.print(table)
        console.print(f"miss / hit latency at p50: [bold]{hit_miss['miss_over_hit_p50']:.1f}x[/]")
    if overhead is not None:
        table = Table("step", "p50 ms", "p99 ms", title="gateway overhead against Redis (in-process)")
        for name, values in overhead.items():
            table.add_row(name, f"{values['p50_ms']:.2f}", f"{values['p99_ms']:.2f}")
        console.print(table)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", help="OpenAI base URL of a running service (omit to skip part 1)")
    parser.add_argument("--api-key", help="API key for --base-url")
    parser.add_argument("--model", default="mistral-tiny")
    parser.add_argument("--redis-url", required=True, help="the service's Redis")
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--iterations", type=int, default=500)
    args = parser.parse_args(argv)
    hit_miss = None
    if args.base_url:
        from .load import require_loopback

        require_loopback(args.base_url)
        hit_miss = asyncio.run(cache_hit_vs_miss(args.base_url, args.api_key, args.model, args.requests, args.max_tokens))
    overhead = asyncio.run(gateway_overhead(args.redis_url, args.iterations))
    print_report(hit_miss, overhead)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
