"""The request pipeline: validate, prepare, generate, and shape OpenAI responses.

Routes hand parsed requests to :class:`Pipeline`; it composes the engine adapter and the engine
client (and, in later stages, auth, quotas, the prompt cache and moderation) and returns either a
finished response model or an iterator of server-sent events.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from ..engine.adapter import EngineAdapter, PreparedRequest
from ..engine.types import EngineOutput, EngineRequest
from ..errors import APIError, ModelNotFoundError, internal_error
from ..protocol import (
    AssistantMessage,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatDelta,
    Completion,
    CompletionChoice,
    CompletionRequest,
    Usage,
)
from .engine_client import EngineClient

logger = logging.getLogger(__name__)

DONE_EVENT = "data: [DONE]\n\n"


@dataclass
class _Choice:
    text: str = ""
    tokens: int = 0
    finish_reason: str | None = None


@dataclass
class _Job:
    """All sequences of one API request, each tagged with its choice index."""

    request_id: str
    prompt_tokens: int
    sequences: list[tuple[int, EngineRequest]] = field(default_factory=list)

    @classmethod
    def of(cls, prepared: Sequence[PreparedRequest]) -> _Job:
        job = cls(request_id=prepared[0].request_id, prompt_tokens=sum(p.prompt_tokens for p in prepared))
        for p in prepared:
            job.sequences.extend((len(job.sequences), choice) for choice in p.choices)
        return job


def sse(payload: dict) -> str:
    """One server-sent event carrying a JSON payload."""
    return f"data: {json.dumps(payload, separators=(',', ':'), ensure_ascii=False)}\n\n"


def _client_finish_reason(reason: str | None) -> str:
    """Maps an engine finish reason to the API's; engine failures become errors."""
    if reason in ("stop", "length"):
        return reason
    raise internal_error()


class Pipeline:
    """Serves chat and text completions on one model.

    Args:
        adapter: Turns API requests into engine requests.
        engine: Runs them.
        served_model: The model name clients must send.
    """

    def __init__(self, adapter: EngineAdapter, engine: EngineClient, served_model: str) -> None:
        self.adapter = adapter
        self.engine = engine
        self.served_model = served_model

    def models(self) -> list[str]:
        """Names of the served models."""
        return [self.served_model]

    def _check_model(self, name: str) -> None:
        if name != self.served_model:
            raise ModelNotFoundError(name, self.models())

    # ---- chat -------------------------------------------------------------------------------

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletion | AsyncIterator[str]:
        """A chat completion, or its event stream when ``request.stream`` is set.

        Raises:
            APIError: the request cannot be served (raised before any event is produced).
        """
        self._check_model(request.model)
        job = _Job.of([self.adapter.chat(request)])
        if request.stream:
            return self._chat_events(job, request.include_usage())
        choices = await self._collect(job)
        return ChatCompletion(
            id=job.request_id,
            model=self.served_model,
            choices=[
                ChatChoice(
                    index=i,
                    message=AssistantMessage(content=c.text),
                    finish_reason=_client_finish_reason(c.finish_reason),
                )
                for i, c in enumerate(choices)
            ],
            usage=Usage.of(job.prompt_tokens, sum(c.tokens for c in choices)),
        )

    async def _chat_events(self, job: _Job, include_usage: bool) -> AsyncIterator[str]:
        created = int(time.time())

        def chunk(choices: list[ChatChunkChoice], usage: Usage | None = None) -> str:
            body = ChatCompletionChunk(
                id=job.request_id, created=created, model=self.served_model, choices=choices, usage=usage
            ).model_dump()
            if not include_usage:
                del body["usage"]  # OpenAI sends the field only when usage was asked for
            return sse(body)

        for index, _ in job.sequences:
            yield chunk([ChatChunkChoice(index=index, delta=ChatDelta(role="assistant", content=""))])
        async for event in self._stream(job):
            if isinstance(event, Usage):
                if include_usage:
                    yield chunk([], usage=event)
                continue
            index, output = event
            if output.text:
                yield chunk([ChatChunkChoice(index=index, delta=ChatDelta(content=output.text))])
            if output.finish_reason is not None:
                reason = _client_finish_reason(output.finish_reason)
                yield chunk([ChatChunkChoice(index=index, delta=ChatDelta(), finish_reason=reason)])

    # ---- text completions ---------------------------------------------------------------------

    async def completion(self, request: CompletionRequest) -> Completion | AsyncIterator[str]:
        """A text completion, or its event stream when ``request.stream`` is set."""
        self._check_model(request.model)
        job = _Job.of(self.adapter.completion(request))
        if request.stream:
            return self._completion_events(job, request.include_usage())
        choices = await self._collect(job)
        return Completion(
            id=job.request_id,
            model=self.served_model,
            choices=[
                CompletionChoice(index=i, text=c.text, finish_reason=_client_finish_reason(c.finish_reason))
                for i, c in enumerate(choices)
            ],
            usage=Usage.of(job.prompt_tokens, sum(c.tokens for c in choices)),
        )

    async def _completion_events(self, job: _Job, include_usage: bool) -> AsyncIterator[str]:
        created = int(time.time())

        def chunk(choices: list[CompletionChoice], usage: Usage | None = None) -> str:
            body = Completion(
                id=job.request_id, created=created, model=self.served_model, choices=choices, usage=usage
            ).model_dump()
            if not include_usage:
                del body["usage"]
            return sse(body)

        async for event in self._stream(job):
            if isinstance(event, Usage):
                if include_usage:
                    yield chunk([], usage=event)
                continue
            index, output = event
            reason = None if output.finish_reason is None else _client_finish_reason(output.finish_reason)
            if output.text or reason is not None:
                yield chunk([CompletionChoice(index=index, text=output.text, finish_reason=reason)])

    # ---- shared -------------------------------------------------------------------------------

    async def _collect(self, job: _Job) -> list[_Choice]:
        choices = [_Choice() for _ in job.sequences]
        async for event in self._outputs(job):
            index, output = event
            choice = choices[index]
            choice.text += output.text
            choice.tokens += output.num_tokens
            choice.finish_reason = output.finish_reason or choice.finish_reason
        return choices

    async def _stream(self, job: _Job) -> AsyncIterator[tuple[int, EngineOutput] | Usage]:
        """Engine outputs of all choices, then the usage; errors end the stream as an event."""
        completion_tokens = 0
        async for index, output in self._outputs(job):
            completion_tokens += output.num_tokens
            yield index, output
        yield Usage.of(job.prompt_tokens, completion_tokens)

    async def _outputs(self, job: _Job) -> AsyncIterator[tuple[int, EngineOutput]]:
        """Interleaves the output streams of all sequences of a job."""
        if len(job.sequences) == 1:
            index, request = job.sequences[0]
            async for output in self.engine.generate(request):
                yield index, output
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

        tasks = [asyncio.create_task(pump(i, r)) for i, r in job.sequences]
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


async def guard_stream(events: AsyncIterator[str]) -> AsyncIterator[str]:
    """Ends an event stream the OpenAI way: ``[DONE]``, or an error event if it fails midway."""
    try:
        async for event in events:
            yield event
    except APIError as error:
        yield sse(error.body().model_dump())
        return
    except Exception:
        logger.exception("stream failed")
        yield sse(internal_error().body().model_dump())
        return
    yield DONE_EVENT
