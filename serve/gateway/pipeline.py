"""The request pipeline: authenticate, validate, admit, cache, generate, account.

Routes hand parsed requests to :class:`Pipeline`; it composes the engine adapter, the tenancy
components, the prompt cache and the engine client, and returns a :class:`Reply` (a response
model or a stream of server-sent events, plus headers). See DESIGN.md's request flow.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from ..cache import CachedChoice, CachedResponse, Flight, PromptCache, cache_key, is_deterministic
from ..engine.adapter import EngineAdapter, PreparedRequest
from ..engine.types import EngineOutput, EngineRequest
from ..errors import ModelNotFoundError, PermissionDeniedError
from ..protocol import ChatCompletionRequest, CompletionRequest, Usage, _SamplingRequest
from ..tenancy.auth import Authenticator
from ..tenancy.keys import Principal
from ..tenancy.quotas import Admission, QuotaManager
from ..tenancy.usage import UsageRecorder
from .engine_client import EngineClient
from .responses import ChatShape, ChoiceResult, CompletionShape, Events, collect, guard_stream

logger = logging.getLogger(__name__)


@dataclass
class Reply:
    """What a route sends: a response model or an SSE stream, and extra headers."""

    body: BaseModel | AsyncIterator[str]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Job:
    """All sequences of one API request; a sequence's position is its choice index."""

    request_id: str
    prompt_tokens: int
    sequences: tuple[EngineRequest, ...]

    @classmethod
    def of(cls, prepared: Sequence[PreparedRequest]) -> _Job:
        return cls(
            request_id=prepared[0].request_id,
            prompt_tokens=sum(p.prompt_tokens for p in prepared),
            sequences=tuple(choice for p in prepared for choice in p.choices),
        )

    def token_budget(self) -> int:
        """Tokens the request may use at most: its prompts plus every choice's max_tokens."""
        return self.prompt_tokens + sum(s.sampling.max_tokens for s in self.sequences)


@dataclass(frozen=True)
class Tenancy:
    """The Redis-backed components the pipeline needs."""

    auth: Authenticator
    quotas: QuotaManager
    usage: UsageRecorder
    cache: PromptCache | None


class Pipeline:
    """Serves chat and text completions of one model to authenticated teams.

    Args:
        adapter: Turns API requests into engine requests.
        engine: Runs them.
        served_model: The model name clients send.
        model_fingerprint: Model id and revision (part of the cache key).
        tenancy: Keys, quotas, usage and the prompt cache.
    """

    def __init__(self, adapter: EngineAdapter, engine: EngineClient, served_model: str,
                 model_fingerprint: str, tenancy: Tenancy) -> None:
        self.adapter = adapter
        self.engine = engine
        self.served_model = served_model
        self.model_fingerprint = model_fingerprint
        self.tenancy = tenancy
        self._background: set[asyncio.Task] = set()

    async def authenticate(self, authorization: str | None) -> Principal:
        """The caller behind an ``Authorization`` header (401/503 otherwise)."""
        return await self.tenancy.auth.authenticate(authorization)

    def models(self, principal: Principal) -> list[str]:
        """The served models this caller may use."""
        return [m for m in [self.served_model] if principal.may_use(m)]

    async def chat(self, principal: Principal, request: ChatCompletionRequest, use_cache: bool) -> Reply:
        """A chat completion (JSON or SSE)."""
        self._check_model(principal, request.model)
        job = _Job.of([self.adapter.chat(request)])
        return await self._serve(principal, request, job, ChatShape(job.request_id, self.served_model), use_cache)

    async def completion(self, principal: Principal, request: CompletionRequest, use_cache: bool) -> Reply:
        """A text completion (JSON or SSE)."""
        self._check_model(principal, request.model)
        job = _Job.of(self.adapter.completion(request))
        return await self._serve(principal, request, job, CompletionShape(job.request_id, self.served_model), use_cache)

    def _check_model(self, principal: Principal, name: str) -> None:
        if name != self.served_model:
            raise ModelNotFoundError(name, self.models(principal) or [self.served_model])
        if not principal.may_use(name):
            raise PermissionDeniedError(
                message="Your API key does not have access to this model.", param="model", code="model_not_allowed"
            )

    async def _serve(self, principal: Principal, request: _SamplingRequest, job: _Job,
                     shape: ChatShape | CompletionShape, use_cache: bool) -> Reply:
        admission = await self.tenancy.quotas.admit(principal.team, job.token_budget())
        flight = await self._acquire(principal, job, shape.endpoint, use_cache)
        headers = {**admission.headers, "x-cache": flight.status}
        if flight.entry is not None:
            events = self._replay(flight.entry)
            self._spawn(self._account(principal, admission, flight, job, flight.entry, cached=True))
        else:
            events = self._generate(principal, admission, flight, job)
        choices = len(job.sequences)
        if request.stream:
            return Reply(guard_stream(shape.events(events, choices, request.include_usage())), headers)
        results, usage = await collect(events, choices)
        return Reply(shape.whole(results, usage), headers)

    async def _acquire(self, principal: Principal, job: _Job, endpoint: str, use_cache: bool) -> Flight:
        cache = self.tenancy.cache
        if cache is None or not use_cache or not is_deterministic(job.sequences):
            return Flight("bypass")
        key = cache_key(
            salt=principal.team.salt,
            model=self.model_fingerprint,
            policy_version=principal.team.policy or "default",
            endpoint=endpoint,
            choices=job.sequences,
        )
        return await cache.acquire(key)

    @staticmethod
    async def _replay(entry: CachedResponse) -> Events:
        for index, choice in enumerate(entry.choices):
            yield index, EngineOutput(text=choice.text, num_tokens=choice.completion_tokens,
                                      finish_reason=choice.finish_reason)  # type: ignore[arg-type]
        yield Usage.of(entry.prompt_tokens, sum(c.completion_tokens for c in entry.choices))

    async def _generate(self, principal: Principal, admission: Admission, flight: Flight, job: _Job) -> Events:
        results = [ChoiceResult() for _ in job.sequences]
        complete = False
        try:
            async for index, output in self._outputs(job):
                result = results[index]
                result.text += output.text
                result.tokens += output.num_tokens
                result.finish_reason = output.finish_reason or result.finish_reason
                yield index, output
            complete = all(r.finish_reason in ("stop", "length") for r in results)
            yield Usage.of(job.prompt_tokens, sum(r.tokens for r in results))
        finally:
            # Only a complete answer is cached: never one cut by an error or a disconnect.
            answer = CachedResponse(
                choices=tuple(CachedChoice(r.text, r.finish_reason or "", r.tokens) for r in results),
                prompt_tokens=job.prompt_tokens,
            ) if complete else None
            used = sum(r.tokens for r in results)
            self._spawn(self._account(principal, admission, flight, job, answer, cached=False, used=used))

    async def _account(self, principal: Principal, admission: Admission, flight: Flight, job: _Job,
                       answer: CachedResponse | None, cached: bool, used: int | None = None) -> None:
        """Stores the answer, returns unused reserved tokens, and counts usage (after the reply)."""
        completion_tokens = sum(c.completion_tokens for c in answer.choices) if answer else (used or 0)
        await flight.finish(None if cached else answer)
        # A cache hit used no GPU: all its reserved tokens go back to the team.
        await self.tenancy.quotas.settle(admission, 0 if cached else job.prompt_tokens + completion_tokens)
        await self.tenancy.usage.record(principal, job.prompt_tokens, completion_tokens, cached)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        # Runs to completion even when the request's own task is cancelled by a disconnect.
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _outputs(self, job: _Job) -> AsyncIterator[tuple[int, EngineOutput]]:
        """Interleaves the output streams of all sequences of a job."""
        if len(job.sequences) == 1:
            async for output in self.engine.generate(job.sequences[0]):
                yield 0, output
            return
        queue: asyncio.Queue[tuple[int, EngineOutput] | Exception | None] = asyncio.Queue()

        async def pump(index: int, request: EngineRequest) -> None:
            try:
                async for output in self.engine.generate(request):
                    await queue.put((index, output))
            except Exception as exc:  # forwarded to the consumer, which re-raises it
                await queue.put(exc)
            finally:
                await queue.put(None)

        tasks = [asyncio.create_task(pump(i, r)) for i, r in enumerate(job.sequences)]
        try:
            remaining = len(tasks)
            while remaining:
                item = await queue.get()
                if item is None:
                    remaining -= 1
                elif isinstance(item, Exception):
                    raise item
                else:
                    yield item
        finally:
            for task in tasks:
                task.cancel()
