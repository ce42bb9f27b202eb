"""Conversion of OpenAI requests into engine requests (prompt tokens and sampling parameters).

This is where the OpenAI protocol meets the model: prompt encoding (Mistral's format through
mistral-common, or a chat template; :mod:`serve.prompts`), tools and output constraints, defaults of
the sampling parameters, and the context-length check all happen here, in the gateway, so that a
request which cannot be served is refused before it reaches a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from ..engine.api import PromptEncoder
from ..engine.constraints import ConstraintError, json_grammar
from ..engine.types import EngineRequest, SamplingParams
from ..errors import ContextLengthExceededError, InvalidRequestError
from ..protocol import ChatCompletionRequest, CompletionRequest, SamplingRequest
from .prompting import message_dicts, output_schema, schema_text, tool_dicts
from .request_ids import new_api_id

# OpenAI's defaults for temperature and top_p.
DEFAULT_TEMPERATURE = 1.0
DEFAULT_TOP_P = 1.0


def new_request_id(prefix: str) -> str:
    """A new API response id (``chatcmpl-...``, ``cmpl-...``, ``modr-...``) on the platform's
    request id (Ray Serve's ``X-Request-Id``, see :mod:`serve.gateway.request_ids`)."""
    return new_api_id(prefix)


@dataclass(frozen=True)
class PreparedRequest:
    """An API request turned into one engine request per choice."""

    request_id: str
    prompt_tokens: int
    choices: list[EngineRequest]
    # How the answer is read: plain text, maybe tool calls ([TOOL_CALLS] shown), or tool calls only.
    tool_mode: Literal["none", "auto", "forced"] = "none"


class EngineAdapter:
    """Builds engine requests with the served model's prompt encoder.

    Args:
        encoder: Encodes conversations and raw prompts (:mod:`serve.prompts`).
        max_model_len: Context limit of the engine.
        max_choices: Largest ``n`` a request may ask for.
    """

    def __init__(self, encoder: PromptEncoder, max_model_len: int, max_choices: int) -> None:
        self.encoder = encoder
        self.max_model_len = max_model_len
        self.max_choices = max_choices

    def chat(self, request: ChatCompletionRequest, request_id: str | None = None) -> PreparedRequest:
        """Encodes the conversation (and its tools) and sets the output constraint.

        Args:
            request: The (moderated) request.
            request_id: The API response id (default: a new ``chatcmpl-...``).
        """
        mode = request.tool_mode()
        if mode != "none" and self.encoder.tool_calls_token_id is None:
            raise InvalidRequestError(
                message="This model's prompt format has no tool calls; omit `tools`.", param="tools",
                code="unsupported_parameter",
            )
        try:
            # A forced answer starts after [TOOL_CALLS]: the model then writes the calls' JSON.
            prompt = self.encoder.encode_chat(
                message_dicts(request.messages), tools=tool_dicts(request), tool_call_prefix=mode == "forced"
            )
        except ValueError as exc:  # PromptError: a static message about roles, order or tool ids
            raise InvalidRequestError(
                message=f"The conversation cannot be encoded for this model: {exc}",
                param="messages",
                code="invalid_messages",
            ) from None
        prepared = self._prepare(request, prompt, "messages", request_id or new_request_id("chatcmpl"))
        extra: dict = {"json_schema": self._checked_schema(request)}
        if mode == "auto":
            extra["show_token_ids"] = (self.encoder.tool_calls_token_id,)
        choices = [replace(c, sampling=replace(c.sampling, **extra)) for c in prepared.choices]
        return replace(prepared, choices=choices, tool_mode=mode)

    @staticmethod
    def _checked_schema(request: ChatCompletionRequest) -> str | None:
        """The answer's JSON schema as text, refused with a 400 when it cannot be enforced."""
        schema = schema_text(output_schema(request))
        if schema is not None:
            try:
                json_grammar(schema)
            except ConstraintError as exc:
                param = "tools" if request.tool_mode() == "forced" else "response_format"
                raise InvalidRequestError(
                    message=f"The JSON schema cannot be enforced: {exc}", param=param, code="invalid_schema",
                ) from None
        return schema

    def completion(self, request: CompletionRequest, request_id: str | None = None) -> list[PreparedRequest]:
        """Tokenizes each prompt of a text completion (one prepared request per prompt).

        Args:
            request: The (moderated) request.
            request_id: The API response id (default: a new ``cmpl-...``); the choices of all prompts
                are numbered in one sequence under it.
        """
        if request.echo or request.suffix:
            raise InvalidRequestError(
                message="`echo` and `suffix` are not supported.", param="echo" if request.echo else "suffix",
                code="unsupported_parameter",
            )
        prompts = request.prompts()
        if len(prompts) * request.n > self.max_choices:
            # Checked before any tokenizing: every prompt times n is one engine sequence.
            raise InvalidRequestError(
                message=f"A request may generate at most {self.max_choices} completions: "
                f"{len(prompts)} prompts times n={request.n} is too many.",
                param="prompt" if len(prompts) > 1 else "n", code="invalid_value",
            )
        request_id = request_id or new_request_id("cmpl")
        prepared = []
        for number, prompt in enumerate(prompts):
            ids = self.encoder.encode_text(prompt)
            prepared.append(self._prepare(request, list(ids), "prompt", request_id, first_choice=number * request.n))
        return prepared

    def _prepare(self, request: SamplingRequest, prompt: list[int], param: str, request_id: str,
                 first_choice: int = 0) -> PreparedRequest:
        self._check_supported(request)
        room = self.max_model_len - len(prompt)
        if request.max_tokens is None:
            if room < 1:
                raise ContextLengthExceededError(len(prompt), 1, self.max_model_len, param)
            max_tokens = room  # OpenAI's default: whatever the context leaves
        elif request.max_tokens > room:
            raise ContextLengthExceededError(len(prompt), request.max_tokens, self.max_model_len, param)
        else:
            max_tokens = request.max_tokens
        temperature = DEFAULT_TEMPERATURE if request.temperature is None else request.temperature
        choices = [
            EngineRequest(
                request_id=f"{request_id}-{first_choice + index}",
                prompt_token_ids=tuple(prompt),
                sampling=SamplingParams(
                    max_tokens=max_tokens,
                    temperature=temperature,
                    top_p=DEFAULT_TOP_P if request.top_p is None else request.top_p,
                    # Each choice gets its own seed so that n>1 with a seed gives n different,
                    # individually reproducible completions.
                    seed=None if request.seed is None else request.seed + index,
                    stop=tuple(request.stop_list()),
                    ignore_eos=request.ignore_eos,
                    min_tokens=min(request.min_tokens, max_tokens),
                    logit_bias=tuple(sorted((int(k), float(v)) for k, v in (request.logit_bias or {}).items())),
                    presence_penalty=request.presence_penalty or 0.0,
                    frequency_penalty=request.frequency_penalty or 0.0,
                ),
            )
            for index in range(request.n)
        ]
        return PreparedRequest(request_id=request_id, prompt_tokens=len(prompt), choices=choices)

    def _check_supported(self, request: SamplingRequest) -> None:
        if request.n > self.max_choices:
            raise InvalidRequestError(
                message=f"`n` must be at most {self.max_choices}.", param="n", code="invalid_value"
            )
        for name in [*request.unsupported, *(n for n in ("logprobs", "top_logprobs") if getattr(request, n))]:
            raise InvalidRequestError(
                message=f"`{name}` is not supported by this server.", param=name, code="unsupported_parameter"
            )
        bias = request.logit_bias or {}
        if any(int(token) >= self.encoder.vocab_size for token in bias):
            raise InvalidRequestError(
                message=f"`logit_bias` token ids must be below {self.encoder.vocab_size}.", param="logit_bias",
                code="invalid_value",
            )

