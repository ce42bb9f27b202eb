"""Load for the cluster tools and tests: one request at a time, classified exactly.

Every request goes to a loopback URL over plain HTTP (httpx), so each outcome can be told apart
precisely: a complete answer, a clean error (OpenAI's envelope, with its status and code; a
stream's closing error event), or an unclean one (an error without the envelope, a stream cut
without ``[DONE]`` or an error event, a timeout: a request that hung). Requests send
``Cache-Control: no-cache`` so that every one reaches an engine replica.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import httpx

from .local import require_loopback

PROMPTS = (
    "Tell me a story about a lighthouse keeper.",
    "Explain continuous batching in one paragraph.",
    "List five uses for a paperclip.",
    "What is the capital of France?",
    "Write a haiku about autoscaling.",
    "Summarize the plot of a heist movie.",
)

# Outcomes that are a correct answer to the client.
OK = "ok"
DISCONNECTED = "disconnected"  # the client hung up on purpose (the soak's disconnect traffic)
# Outcomes that are not: they must never happen.
UNCLEAN = ("no_envelope", "stream_truncated", "timeout", "connect_error", "bad_body")


@dataclass
class Outcome:
    """How one request ended.

    Attributes:
        outcome: ``ok``, ``disconnected``, ``error:<status>:<code>`` (a clean API error, also a
            stream's error event as ``error:stream:<code>``), or one of :data:`UNCLEAN`.
        status: HTTP status (0 when none arrived).
        stream: Whether it was streamed.
        started: Monotonic send time.
        latency_s: Send to end (or to the error).
        ttft_s: Send to the first content (streams).
        retry_after: The ``Retry-After`` header of an error, if any.
        tokens: Completion tokens received (usage, when sent).
    """

    outcome: str
    status: int = 0
    stream: bool = False
    started: float = 0.0
    latency_s: float = 0.0
    ttft_s: float | None = None
    retry_after: str | None = None
    tokens: int = 0

    @property
    def clean(self) -> bool:
        """Answered, or refused with a proper error (never cut, hung, or without the envelope)."""
        return self.outcome not in UNCLEAN


@dataclass
class RequestSpec:
    """What to send."""

    stream: bool = False
    max_tokens: int = 32
    endpoint: str = "chat"  # or "completions"
    disconnect_after_chunks: int | None = None  # streams only: hang up after this many events
    temperature: float = 1.0

    def body(self, model: str, prompt: str) -> dict:
        payload: dict = {"model": model, "max_tokens": self.max_tokens, "temperature": self.temperature,
                         "stream": self.stream}
        if self.endpoint == "chat":
            payload["messages"] = [{"role": "user", "content": prompt}]
        else:
            payload["prompt"] = prompt
        if self.stream:
            payload["stream_options"] = {"include_usage": True}
        return payload

    @property
    def path(self) -> str:
        return "/chat/completions" if self.endpoint == "chat" else "/completions"


def _error_outcome(status: int, body: bytes) -> str:
    try:
        error = json.loads(body)["error"]
        return f"error:{status}:{error.get('code') or error.get('type')}"
    except (ValueError, KeyError, TypeError):
        return "no_envelope"


async def send(client: httpx.AsyncClient, base_url: str, api_key: str, model: str, spec: RequestSpec,
               prompt: str | None = None, timeout_s: float = 120) -> Outcome:
    """Sends one request and classifies how it ended (never raises for HTTP or network failures)."""
    require_loopback(base_url)
    headers = {"Authorization": f"Bearer {api_key}", "Cache-Control": "no-cache"}
    body = spec.body(model, prompt or random.choice(PROMPTS))
    started = time.monotonic()
    result = Outcome(outcome="", stream=spec.stream, started=started)
    try:
        async with asyncio.timeout(timeout_s):
            async with client.stream("POST", base_url + spec.path, json=body, headers=headers) as response:
                result.status = response.status_code
                result.retry_after = response.headers.get("retry-after")
                if response.status_code != 200:
                    result.outcome = _error_outcome(response.status_code, await response.aread())
                elif not spec.stream:
                    try:
                        data = json.loads(await response.aread())
                        result.tokens = data["usage"]["completion_tokens"]
                        result.outcome = OK if data["choices"] else "bad_body"
                    except (ValueError, KeyError, TypeError):
                        result.outcome = "bad_body"
                else:
                    result.outcome = await _read_stream(response, spec, result, started)
    except TimeoutError:
        result.outcome = "timeout"
    except (httpx.RemoteProtocolError, httpx.ReadError) as error:
        result.outcome = "stream_truncated" if result.status == 200 else "connect_error"
        del error
    except httpx.HTTPError:
        result.outcome = "connect_error"
    result.latency_s = time.monotonic() - started
    return result


async def _read_stream(response: httpx.Response, spec: RequestSpec, result: Outcome, started: float) -> str:
    events = 0
    async for line in response.aiter_lines():
        if not line.startswith("data: "):
            continue
        payload = line.removeprefix("data: ")
        if payload == "[DONE]":
            return OK
        events += 1
        event = json.loads(payload)
        if "error" in event:
            # The error event ends the stream: OpenAI's way, no [DONE] after it.
            return f"error:stream:{event['error'].get('code') or event['error'].get('type')}"
        if result.ttft_s is None and any(_has_text(c) for c in event.get("choices") or ()):
            result.ttft_s = time.monotonic() - started
        if event.get("usage"):
            result.tokens = event["usage"]["completion_tokens"]
        if spec.disconnect_after_chunks is not None and events >= spec.disconnect_after_chunks:
            return DISCONNECTED  # leaving the `async with` closes the connection
    return "stream_truncated"


def _has_text(choice: dict) -> bool:
    return bool((choice.get("delta") or {}).get("content") or choice.get("text"))


class ClosedLoop:
    """``concurrency`` workers sending back to back; the level can change while running.

    Args:
        base_url: ``http://127.0.0.1:PORT/v1`` (loopback only).
        api_key: A key of a team without limits.
        model: The served model name.
        choose: Picks the next request's spec (mixes streaming, lengths, disconnects).
        max_requests: Stops sending after this many (a bound for the soak).
    """

    def __init__(self, base_url: str, api_key: str, model: str, choose: Callable[[], RequestSpec],
                 max_requests: int | None = None, timeout_s: float = 120) -> None:
        require_loopback(base_url)
        self.base_url, self.api_key, self.model = base_url, api_key, model
        self.choose = choose
        self.max_requests = max_requests
        self.timeout_s = timeout_s
        self.results: list[Outcome] = []
        self.in_flight = 0
        self.sent = 0
        self._target = 0
        self._workers: dict[int, asyncio.Task] = {}
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout_s, connect=10),
                                         limits=httpx.Limits(max_connections=512, max_keepalive_connections=64))

    def set_concurrency(self, level: int) -> None:
        """Changes the number of workers (extra workers stop after their current request)."""
        self._target = level
        for index in range(level):
            if index not in self._workers or self._workers[index].done():
                self._workers[index] = asyncio.create_task(self._worker(index))

    async def _worker(self, index: int) -> None:
        while index < self._target and (self.max_requests is None or self.sent < self.max_requests):
            self.sent += 1
            self.in_flight += 1
            try:
                result = await send(self._client, self.base_url, self.api_key, self.model, self.choose(),
                                    timeout_s=self.timeout_s)
            finally:
                self.in_flight -= 1
            self.results.append(result)
            if result.outcome.startswith("error:") and result.retry_after:
                # What a well-behaved client does with Retry-After (bounded, jittered).
                await asyncio.sleep(min(float(result.retry_after), 5) * random.uniform(0.5, 1.0))

    async def stop(self, drain: bool = True) -> None:
        """Stops sending; waits for requests in flight (``drain``) or cancels them."""
        self._target = 0
        if not drain:
            for worker in self._workers.values():
                worker.cancel()
        await asyncio.gather(*self._workers.values(), return_exceptions=True)
        self._workers = {}
        await self._client.aclose()


async def burst(base_url: str, api_key: str, model: str, specs: Sequence[RequestSpec],
                timeout_s: float = 120) -> list[Outcome]:
    """Sends all ``specs`` at once and returns their outcomes (in order)."""
    limits = httpx.Limits(max_connections=len(specs) + 8, max_keepalive_connections=len(specs) + 8)
    async with httpx.AsyncClient(timeout=httpx.Timeout(timeout_s, connect=10), limits=limits) as client:
        return list(await asyncio.gather(*(send(client, base_url, api_key, model, s, timeout_s=timeout_s)
                                           for s in specs)))


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100, nearest rank) or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


@dataclass
class Summary:
    """Counts and latencies of a set of outcomes."""

    requests: int
    by_outcome: dict[str, int]
    by_status: dict[str, int]
    unclean: int
    p50_s: float | None
    p99_s: float | None
    ttft_p50_s: float | None
    ttft_p99_s: float | None
    tokens: int
    extra: dict = field(default_factory=dict)

    @classmethod
    def of(cls, results: Sequence[Outcome]) -> Summary:
        answered = [r.latency_s for r in results if r.outcome == OK]
        ttfts = [r.ttft_s for r in results if r.ttft_s is not None and r.outcome == OK]
        return cls(
            requests=len(results),
            by_outcome=dict(Counter(r.outcome for r in results).most_common()),
            by_status=dict(Counter(str(r.status) for r in results).most_common()),
            unclean=sum(not r.clean for r in results),
            p50_s=percentile(answered, 50), p99_s=percentile(answered, 99),
            ttft_p50_s=percentile(ttfts, 50), ttft_p99_s=percentile(ttfts, 99),
            tokens=sum(r.tokens for r in results),
        )

    def as_dict(self) -> dict:
        return asdict(self)
