"""The NeMo Guardrails LLM provider that calls the served Mistral (the Engine deployment).

Model-based rails (self check input/output) call NeMo's ``LLMModel`` interface; this provider
implements it by encoding the prompt with the served model's prompt encoder (Mistral's format
through mistral-common for Mistral models, so text quoted from a user can never close the judge's
turn or forge its answer: it is always text), and streaming an :class:`~serve.engine.api.EngineRequest` from the Engine deployment through the
injected :class:`~serve.engine.api.EngineClient`: no external API, no second copy of the weights.

Registration is explicit (no import-time side effects)::

    register_engine_provider(RayEngineClient(engine_handle), prompt_encoder)

after which any policy with ``models: [{type: main, engine: mistral_serve, model: ...}]`` gets an
:class:`EngineLLM` from NeMo's provider registry.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from nemoguardrails import register_provider
from nemoguardrails.types import ChatMessage, LLMResponse, LLMResponseChunk, UsageInfo

from serve.engine.api import EngineClient, EngineFailure, EngineRequest, PromptEncoder, SamplingParams

PROVIDER_NAME = "mistral_serve"
# NeMo asks for `lowest_temperature` (0.001) to mean "as deterministic as possible": greedy here.
GREEDY_BELOW = 0.01
# Trimming a judge prompt to the context: the marker left where text was cut, a margin for its
# tokens and for re-tokenisation at the seams, the least text worth judging, and how often to retry.
_TRIM_MARKER = "\n[... text omitted to fit the moderator's context ...]\n"
_TRIM_MARKER_TOKENS = 32
_MIN_KEPT_TOKENS = 64
_FIT_ATTEMPTS = 3


class EngineLLMError(RuntimeError):
    """The engine could not answer a moderation call (overloaded, unavailable, failed, cancelled,
    or the prompt does not fit); the moderator handles it as a failed rail (its ``on_error``)."""


class EngineLLM:
    """NeMo's ``LLMModel`` on the served Mistral.

    Args:
        backend: Where sequences are generated.
        encoder: The served model's prompt encoder (the gateway's own, injected by the app builder).
        model: Model name (from the policy's ``models`` entry).
        max_model_len: Context limit; longer prompts are refused before reaching the engine.
        default_max_tokens: Completion tokens when NeMo asks for none.
    """

    def __init__(
        self,
        backend: EngineClient,
        encoder: PromptEncoder,
        model: str,
        max_model_len: int | None = None,
        default_max_tokens: int = 16,
        **_: Any,
    ) -> None:
        self._backend = backend
        self._encoder = encoder
        self._model = model
        self._max_model_len = max_model_len
        self._default_max_tokens = default_max_tokens
        self.calls = 0

    @property
    def model_name(self) -> str:
        """The configured model name."""
        return self._model

    @property
    def provider_name(self) -> str:
        """``mistral_serve``."""
        return PROVIDER_NAME

    @property
    def provider_url(self) -> None:
        """Not an HTTP provider."""
        return None

    def _request(self, prompt: str | Sequence[ChatMessage], stop: list[str] | None, kwargs: dict) -> EngineRequest:
        if isinstance(prompt, str):
            messages = [{"role": "user", "content": prompt}]
        else:
            chat: Sequence[Any] = prompt
            messages = [{"role": m.role.value, "content": m.content or ""} for m in chat]
        max_tokens = int(kwargs.get("max_tokens") or self._default_max_tokens)
        ids = self._fitted(messages, max_tokens)
        temperature = float(kwargs.get("temperature", 0.0) or 0.0)
        return EngineRequest(
            request_id=f"moderation-{uuid.uuid4().hex}",
            prompt_token_ids=ids,
            sampling=SamplingParams(
                max_tokens=max_tokens,
                temperature=0.0 if temperature < GREEDY_BELOW else temperature,
                top_p=float(kwargs.get("top_p", 1.0) or 1.0),
                stop=tuple(stop or ()),
            ),
        )

    def _encode(self, messages: list[dict[str, str]]) -> list[int]:
        try:
            return list(self._encoder.encode_chat(messages))
        except ValueError as exc:  # the prompt's roles or order do not fit the format
            raise EngineLLMError(f"moderation prompt cannot be encoded: {exc}") from None

    def _fitted(self, messages: list[dict[str, str]], max_tokens: int) -> tuple[int, ...]:
        """The prompt's token ids, trimmed to fit the context with ``max_tokens`` to spare.

        A judge prompt longer than the context (a long input under review) is not given up on: the
        middle of its longest message is cut, keeping the judge's instructions, the start and the
        end of the text under review, and a marker where text was left out. (The offline rails
        always see the whole text.)
        """
        ids = self._encode(messages)
        if self._max_model_len is None:
            return tuple(ids)
        budget = self._max_model_len - max_tokens
        for _ in range(_FIT_ATTEMPTS):
            excess = len(ids) - budget
            if excess <= 0:
                return tuple(ids)
            longest = max(range(len(messages)), key=lambda i: len(messages[i]["content"]))
            content = self._encoder.tokenize(messages[longest]["content"])
            keep = len(content) - excess - _TRIM_MARKER_TOKENS
            if keep < _MIN_KEPT_TOKENS:
                break
            head, tail = content[: keep // 2], content[len(content) - (keep - keep // 2):]
            trimmed = self._encoder.decode(head) + _TRIM_MARKER + self._encoder.decode(tail)
            messages = [*messages[:longest], {**messages[longest], "content": trimmed}, *messages[longest + 1:]]
            ids = self._encode(messages)
        raise EngineLLMError(f"moderation prompt of {len(ids)} tokens cannot be trimmed to the context")

    async def stream_async(
        self, prompt: str | list[ChatMessage], *, stop: list[str] | None = None, **kwargs: Any
    ) -> AsyncIterator[LLMResponseChunk]:
        """Streams the completion of ``prompt`` as NeMo chunks."""
        request = self._request(prompt, stop, kwargs)
        self.calls += 1
        prompt_tokens, completion_tokens = len(request.prompt_token_ids), 0
        try:
            async for output in self._backend.generate(request):
                completion_tokens += output.num_tokens
                if output.finish_reason in ("error", "cancelled"):
                    raise EngineLLMError(f"engine finished with {output.finish_reason}")
                usage = None
                if output.finish_reason is not None:
                    usage = UsageInfo(prompt_tokens, completion_tokens, prompt_tokens + completion_tokens)
                yield LLMResponseChunk(
                    delta_content=output.text,
                    model=self._model,
                    finish_reason=output.finish_reason,
                    request_id=request.request_id,
                    usage=usage,
                )
        except EngineFailure as exc:
            raise EngineLLMError(f"engine call failed: {type(exc).__name__}") from exc

    async def generate_async(
        self, prompt: str | list[ChatMessage], *, stop: list[str] | None = None, **kwargs: Any
    ) -> LLMResponse:
        """The whole completion of ``prompt``."""
        text, last = [], None
        async for chunk in self.stream_async(prompt, stop=stop, **kwargs):
            text.append(chunk.delta_content or "")
            last = chunk
        return LLMResponse(
            content="".join(text), model=self._model, finish_reason=last.finish_reason if last else None,
            request_id=last.request_id if last else None, usage=last.usage if last else None,
        )


def register_engine_provider(
    backend: EngineClient, encoder: PromptEncoder, *, max_model_len: int | None = None, name: str = PROVIDER_NAME
) -> None:
    """Registers the provider ``name`` in NeMo's active LLM framework, bound to ``backend``.

    NeMo then creates an :class:`EngineLLM` for every policy model with ``engine: <name>``; the
    model entry's ``parameters`` are passed as keyword arguments (e.g. ``default_max_tokens``).
    """
    register_provider(name, functools.partial(EngineLLM, backend, encoder, max_model_len=max_model_len))
