"""The request pipeline: authenticate, validate, moderate, tokenize, admit, cache, generate, account.

Routes hand parsed requests to :class:`Pipeline`; it composes the moderation stage, the request
adapter, the tenancy components, the prompt cache and the engine client, and returns a
:class:`Reply` (a response model or a stream of server-sent events, plus headers). The caller's
policy is resolved once; the input rails run on the client's texts, then the (masked) request is
tokenized once and the quota admitted on it. See docs/architecture.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from guardrails.policy import PolicyInfo

from .. import metrics
from ..cache import CachedChoice, CachedResponse, Flight, PromptCache, cache_key, is_deterministic
from ..engine.api import EngineClient, EngineOutput, EngineRequest
from ..errors import InvalidRequestError, ModelNotFoundError, NotFoundError, PermissionDeniedError, api_error
from ..logs import note
from ..protocol import ChatCompletionRequest, ChatMessage, CompletionRequest, SamplingRequest, Usage
from ..tenancy.auth import Authenticator
from ..tenancy.keys import Principal
from ..tenancy.quotas import Admission, QuotaManager
from ..tenancy.usage import UsageRecorder
from ..tracing import Tracing
from .adapter import EngineAdapter, PreparedRequest, new_request_id
from .fanout import interleave
from .moderation_stage import ModerationStage, OutputCheck
from .prompting import client_text_spots, texts_at, with_texts
from .responses import (
    ChatShape,
    ChoiceResult,
    CompletionShape,
    Events,
    collect,
    guard_stream,
    primed,
    system_fingerprint,
)

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
    started_at: float = field(default_factory=time.monotonic)
    user: str | None = None  # OpenAI's end-user id, counted in usage

    @classmethod
    def of(cls, prepared: Sequence[PreparedRequest], started_at: float, user: str | None = None) -> _Job:
        return cls(
            request_id=prepared[0].request_id,
            prompt_tokens=sum(p.prompt_tokens for p in prepared),
            sequences=tuple(choice for p in prepared for choice in p.choices),
            started_at=started_at,
            user=user,
        )

    def token_budget(self) -> int:
        """Tokens the request may use at most: its prompts plus every choice's max_tokens."""
        return self.prompt_tokens + sum(s.sampling.max_tokens for s in self.sequences)


@dataclass
class _Outcome:
    """How a request ended, for metrics."""

    endpoint: str
    status: int
    first_token_at: float | None = None


@dataclass(frozen=True)
class Tenancy:
    """The Redis-backed components the pipeline needs."""

    auth: Authenticator
    quotas: QuotaManager
    usage: UsageRecorder
    cache: PromptCache | None


def _note_result(job: _Job, outcome: _Outcome, texts: list[str], tokens: list[int],
                 reasons: list[str | None]) -> None:
    """The request's result in its access record (before the response's last byte is sent)."""
    first = outcome.first_token_at
    note(prompt_tokens=job.prompt_tokens, completion_tokens=sum(tokens),
         ttft_ms=None if first is None else (first - job.started_at) * 1000,
         finish_reasons=[r or "" for r in reasons], completion=texts)


class Pipeline:
    """Serves chat and text completions of one model to authenticated teams.

    Args:
        adapter: Turns API requests into engine requests.
        engine: Runs them.
        served_model: The model name clients send.
        model_fingerprint: Model id and revision (part of the cache key).
        tenancy: Keys, quotas, usage and the prompt cache.
        moderation: Input and output rails (None: moderation disabled).
        tracing: A span per stage (off: no-ops). The access record gets its fields via logs.note.
    """

    def __init__(self, adapter: EngineAdapter, engine: EngineClient, served_model: str,
                 model_fingerprint: str, tenancy: Tenancy, moderation: ModerationStage | None = None,
                 tracing: Tracing | None = None) -> None:
        self.adapter = adapter
        self.engine = engine
        self.served_model = served_model
        self.model_fingerprint = model_fingerprint
        self.system_fingerprint = system_fingerprint(model_fingerprint)
        self.tenancy = tenancy
        self.moderation = moderation
        self.tracing = tracing or Tracing()
        self._background: set[asyncio.Task] = set()

    async def authenticate(self, authorization: str | None) -> Principal:
        """The caller behind an ``Authorization`` header (401/503 otherwise)."""
        with self.tracing.stage("authenticate"):
            principal = await self.tenancy.auth.authenticate(authorization)
        note(team=principal.team.name, key_id=principal.key_id)
        return principal

    def models(self, principal: Principal) -> list[str]:
        """The served models this caller may use."""
        return [m for m in [self.served_model] if principal.may_use(m)]

    async def chat(self, principal: Principal, request: ChatCompletionRequest, use_cache: bool) -> Reply:
        """A chat completion (JSON or SSE)."""
        started_at = time.monotonic()
        self._check_model(principal, request.model)
        policy = self._policy(principal)
        # Every client-written message is moderated, whatever its role: attack text in a
        # client-written assistant or system turn reaches the model just like a user turn.
        first = 0
        if policy is not None and policy.system_prompt:
            # The policy's guardrail prompt goes first; it is ours, so the input rails skip it.
            system = ChatMessage(role="system", content=policy.system_prompt)
            request = request.model_copy(update={"messages": [system, *request.messages]})
            first = 1
        request_id = new_request_id("chatcmpl")
        note(model=request.model, stream=request.stream, completion_id=request_id,
             prompt=[m.model_dump(mode="json") for m in request.messages])
        users = [m.text() for m in request.messages if m.role == "user"]
        context = users[-1] if users else ""
        # Every client-written text: contents (tool results too) and assistant tool-call arguments.
        spots = client_text_spots(request.messages, first)
        texts = texts_at(request.messages, spots)
        masked = await self._check_inputs(principal, policy, texts, request_id, "messages")
        if masked != texts:
            request = request.model_copy(update={"messages": with_texts(request.messages, spots, masked)})
        with self.tracing.stage("validate"):
            prepared = self.adapter.chat(request, request_id)  # the one tokenization
        job = _Job.of([prepared], started_at, request.user)
        check = self._output_check(principal, policy, job, context)
        shape = ChatShape(request_id, self.served_model, prepared.tool_mode, self.system_fingerprint)
        return await self._serve(principal, request, job, shape, use_cache, check)

    async def completion(self, principal: Principal, request: CompletionRequest, use_cache: bool) -> Reply:
        """A text completion (JSON or SSE)."""
        started_at = time.monotonic()
        self._check_model(principal, request.model)
        policy = self._policy(principal)
        if policy is not None and policy.system_prompt:
            # A raw prompt has no system turn to carry the policy's guardrail prompt: serving it
            # would let a team skip that prompt, so such policies serve chat only.
            raise InvalidRequestError(
                message=f"Your team's moderation policy ({policy.name}) requires its system prompt, which raw "
                        "completions cannot carry. Use /v1/chat/completions.",
                param="prompt", code="unsupported_by_policy",
            )
        request_id = new_request_id("cmpl")
        prompts = request.prompts()
        note(model=request.model, stream=request.stream, completion_id=request_id, prompt=prompts)
        masked = await self._check_inputs(principal, policy, prompts, request_id, "prompt")
        if masked != prompts:
            request = request.model_copy(update={"prompt": masked})
        with self.tracing.stage("validate"):
            job = _Job.of(self.adapter.completion(request, request_id), started_at, request.user)  # the one tokenization
        check = self._output_check(principal, policy, job, masked[-1])
        shape = CompletionShape(request_id, self.served_model, self.system_fingerprint)
        return await self._serve(principal, request, job, shape, use_cache, check)

    async def moderations(self, principal: Principal, texts: list[str]) -> Reply:
        """OpenAI's Moderations API, backed by the caller's input rails.

        Metered like generation: one request and the input's tokens are taken from the team's
        buckets before the rails run, and a served check counts in usage (prompt tokens only).
        """
        if self.moderation is None:
            raise NotFoundError(message="Moderation is disabled on this deployment.", code="moderation_disabled")
        tokens = sum(len(self.adapter.encoder.tokenize(text)) for text in texts)
        admission = await self.tenancy.quotas.admit(principal.team, tokens)
        try:
            response = await self.moderation.moderations(principal, texts, new_request_id("modr"))
        except BaseException:
            self._spawn(self.tenancy.quotas.settle(admission, 0))
            raise
        self._spawn(self.tenancy.usage.record(principal, tokens, 0, cached=False))
        return Reply(response, admission.headers)

    def _policy(self, principal: Principal) -> PolicyInfo | None:
        """The caller's moderation policy, resolved once per request (None: moderation disabled)."""
        return self.moderation.policy(principal) if self.moderation else None

    async def _check_inputs(self, principal: Principal, policy: PolicyInfo | None, texts: list[str],
                            request_id: str, param: str) -> list[str]:
        """The input rails on the client's texts, before tokenization: the texts to generate from."""
        if self.moderation is None or policy is None:
            return texts
        with self.tracing.stage("input_rails", policy=policy.name):
            masked = await self.moderation.check_inputs(principal, policy, texts, request_id, param)
        if masked != texts:
            note(moderation="input_masked")
        return masked

    def _output_check(self, principal: Principal, policy: PolicyInfo | None, job: _Job,
                      context: str) -> OutputCheck | None:
        if self.moderation is None or policy is None:
            return None
        return OutputCheck(principal, policy, job.request_id, context, len(job.sequences))

    def _check_model(self, principal: Principal, name: str) -> None:
        if name != self.served_model:
            raise ModelNotFoundError(name, self.models(principal) or [self.served_model])
        if not principal.may_use(name):
            raise PermissionDeniedError(
                message="Your API key does not have access to this model.", param="model", code="model_not_allowed"
            )

    async def _serve(self, principal: Principal, request: SamplingRequest, job: _Job,
                     shape: ChatShape | CompletionShape, use_cache: bool, check: OutputCheck | None) -> Reply:
        # The quota is admitted on what is generated from: the moderated, tokenized request.
        with self.tracing.stage("admit", tokens=job.token_budget()):
            admission = await self.tenancy.quotas.admit(principal.team, job.token_budget())
        policy_version = check.policy.version if check is not None else "none"
        with self.tracing.stage("cache_lookup") as span:
            flight = await self._acquire(principal, job, shape.endpoint, request.stream, use_cache, policy_version)
            if span is not None:
                span.set_attribute("mistral_serve.cache", flight.status)
        metrics.record_cache(flight.status, principal.team.name)
        note(cache=flight.status)
        headers = {**admission.headers, "x-cache": flight.status}
        if flight.entry is not None:
            events = self._replay(flight.entry)
            outcome = _Outcome(shape.endpoint, status=200, first_token_at=time.monotonic())
            _note_result(job, outcome, [c.text for c in flight.entry.choices],
                         [c.completion_tokens for c in flight.entry.choices], [c.finish_reason for c in flight.entry.choices])
            self._spawn(self._account(principal, admission, flight, job, flight.entry, outcome, cached=True))
        else:
            events = self._generate(principal, admission, flight, job, shape.endpoint, request.stream, check)
            if request.stream:
                events = await primed(events)
        choices = len(job.sequences)
        if request.stream:
            return Reply(guard_stream(shape.events(events, choices, request.include_usage())), headers)
        results, usage = await collect(events, choices)
        return Reply(shape.whole(results, usage), headers)

    async def _acquire(self, principal: Principal, job: _Job, endpoint: str, stream: bool, use_cache: bool,
                       policy_version: str) -> Flight:
        cache = self.tenancy.cache
        if cache is None or not use_cache or not is_deterministic(job.sequences):
            return Flight("bypass")
        key = cache_key(
            salt=principal.team.salt,
            model=self.model_fingerprint,
            policy_version=policy_version,
            endpoint=endpoint,
            stream=stream,
            choices=job.sequences,
        )
        return await cache.acquire(key)

    @staticmethod
    async def _replay(entry: CachedResponse) -> Events:
        for index, choice in enumerate(entry.choices):
            yield index, EngineOutput(text=choice.text, num_tokens=choice.completion_tokens,
                                      finish_reason=choice.finish_reason)  # type: ignore[arg-type]
        yield Usage.of(entry.prompt_tokens, sum(c.completion_tokens for c in entry.choices))

    async def _generate(self, principal: Principal, admission: Admission, flight: Flight, job: _Job,
                        endpoint: str, stream: bool, check: OutputCheck | None) -> Events:
        results = [ChoiceResult() for _ in job.sequences]
        cacheable = False
        # 499: the client went away (nginx's convention); replaced below when we know better.
        outcome = _Outcome(endpoint, status=499)
        outputs = interleave(self.engine, job.sequences, check.stopped if check else set())
        spans = [self.tracing.open_stage("generate", choices=len(job.sequences))]
        if check is not None and self.moderation is not None:
            stage = self.moderation.moderate_stream if stream else self.moderation.moderate_whole
            outputs = stage(outputs, check)
            spans.append(self.tracing.open_stage("output_rails", policy=check.policy.name))
        try:
            async for index, output in outputs:
                if outcome.first_token_at is None and output.num_tokens:
                    outcome.first_token_at = time.monotonic()
                result = results[index]
                result.text += output.text
                result.tokens += output.num_tokens
                result.finish_reason = output.finish_reason or result.finish_reason
                yield index, output
            reasons = {r.finish_reason for r in results}
            # Only a complete answer is cached: never one cut by a rail, an error or a disconnect.
            cacheable = reasons <= {"stop", "length"}
            outcome.status = 200 if reasons <= {"stop", "length", "content_filter"} else 500
            yield Usage.of(job.prompt_tokens, sum(r.tokens for r in results))
        except Exception as error:
            outcome.status = api_error(error).status
            raise
        finally:
            await outputs.aclose()
            answer = CachedResponse(
                choices=tuple(CachedChoice(r.text, r.finish_reason or "", r.tokens) for r in results),
                prompt_tokens=job.prompt_tokens,
            ) if cacheable else None
            used = sum(r.tokens for r in results)
            _note_result(job, outcome, [r.text for r in results], [r.tokens for r in results],
                         [r.finish_reason for r in results])
            for span in spans:
                span.end(completion_tokens=used, status=outcome.status)
            self._spawn(self._account(principal, admission, flight, job, answer, outcome, cached=False, used=used))

    async def _account(self, principal: Principal, admission: Admission, flight: Flight, job: _Job,
                       answer: CachedResponse | None, outcome: _Outcome, cached: bool,
                       used: int | None = None) -> None:
        """Stores the answer, returns unused reserved tokens, counts usage and metrics (after the reply)."""
        with self.tracing.stage("account", cached=cached):
            await self._settle(principal, admission, flight, job, answer, outcome, cached, used)

    async def _settle(self, principal: Principal, admission: Admission, flight: Flight, job: _Job,
                      answer: CachedResponse | None, outcome: _Outcome, cached: bool, used: int | None) -> None:
        completion_tokens = sum(c.completion_tokens for c in answer.choices) if answer else (used or 0)
        metrics.record_request(
            principal.team.name, outcome.endpoint, outcome.status, job.prompt_tokens, completion_tokens,
            ttft_s=None if outcome.first_token_at is None else outcome.first_token_at - job.started_at,
            e2e_s=time.monotonic() - job.started_at,
        )
        await flight.finish(None if cached else answer)
        # A cache hit used no GPU: all its reserved tokens go back to the team.
        await self.tenancy.quotas.settle(admission, 0 if cached else job.prompt_tokens + completion_tokens)
        # Usage counts what was served: never a request the platform refused or failed (503 or 429
        # at capacity, 500); a client that went away mid-stream (499) was served what it got.
        if outcome.status in (200, 499):
            await self.tenancy.usage.record(principal, job.prompt_tokens, completion_tokens, cached, job.user)

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        # Runs to completion even when the request's own task is cancelled by a disconnect.
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
