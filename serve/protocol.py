"""Pydantic models mirroring the OpenAI API: requests, responses, stream chunks, moderations, errors.

Requests ignore unknown fields (clients send newer options than we know); responses carry
exactly OpenAI's shape. Conversion to engine parameters lives in :mod:`serve.gateway.adapter`.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator, model_serializer, model_validator

from .protocol_base import RequestModel
from .protocol_moderations import (
    MAX_MODERATION_INPUTS,
    OPENAI_CATEGORIES,
    ModerationRequest,
    ModerationResponse,
    ModerationResult,
)
from .protocol_tools import (
    FunctionCall,
    FunctionCallDelta,
    FunctionDefinition,
    JsonSchemaFormat,
    NamedFunction,
    NamedToolChoice,
    ResponseFormat,
    Tool,
    ToolCall,
    ToolCallDelta,
)

__all__ = [  # the tool and moderation models are re-exported: callers import every OpenAI model from here
    "MAX_MODERATION_INPUTS", "OPENAI_CATEGORIES", "ModerationRequest", "ModerationResponse", "ModerationResult",
    "FunctionCall", "FunctionCallDelta", "FunctionDefinition", "JsonSchemaFormat", "NamedFunction",
    "NamedToolChoice", "ResponseFormat", "Tool", "ToolCall", "ToolCallDelta",
]

MAX_STOP_SEQUENCES = 4
# Prompts in one /v1/completions request; the gateway also bounds prompts x n by gateway.max_choices.
MAX_PROMPTS = 128
# OpenAI's seed is a 64-bit signed integer.
SEED_MIN, SEED_MAX = -(2**63), 2**63 - 1


# OpenAI request fields this server does not implement: a request that sets one (to anything but
# null/false) is refused with a 400 naming it, never served as if it had not been sent.
UNSUPPORTED_FIELDS = (
    "functions", "function_call", "audio", "modalities", "prediction", "web_search_options",
    "reasoning_effort", "service_tier", "store", "metadata", "best_of",
)


class TextContentPart(RequestModel):
    """A ``{"type": "text", "text": ...}`` content part."""

    type: Literal["text"]
    text: str


class ChatMessage(RequestModel):
    """One message of a chat conversation."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _tool_fields(self) -> ChatMessage:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("messages with role `tool` need a `tool_call_id`")
        if self.tool_calls and self.role != "assistant":
            raise ValueError("only assistant messages carry `tool_calls`")
        return self

    def text(self) -> str:
        """The message content as one string (text parts joined)."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(RequestModel):
    """``stream_options`` of a streaming request."""

    include_usage: bool = False


class SamplingRequest(RequestModel):
    """Fields shared by chat and text completions."""

    model: str
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(gt=0, le=1)] | None = None
    n: Annotated[int, Field(ge=1, le=128)] = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: Annotated[int, Field(ge=SEED_MIN, le=SEED_MAX)] | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    logprobs: bool | int | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    logit_bias: dict[str, Annotated[float, Field(ge=-100, le=100)]] | None = None
    user: Annotated[str, Field(max_length=256)] | None = None
    # vLLM's extra body fields (the `openai` client's `extra_body`): benchmarks fix output length.
    ignore_eos: bool = False
    min_tokens: Annotated[int, Field(ge=0)] = 0
    # Names of UNSUPPORTED_FIELDS the request set; the adapter refuses them (400, param = the name).
    unsupported: list[str] = Field(default_factory=list, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _note_unsupported(cls, data):
        if isinstance(data, dict):
            data = {**data, "unsupported": [k for k in UNSUPPORTED_FIELDS if data.get(k) not in (None, False)]}
        return data

    @field_validator("logit_bias")
    @classmethod
    def _bias_keys(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is not None and not all(key.isdigit() for key in value):
            raise ValueError("`logit_bias` keys must be token ids")
        return value

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list):
            if len(value) > MAX_STOP_SEQUENCES:
                raise ValueError(f"at most {MAX_STOP_SEQUENCES} stop sequences are allowed")
            if any(not s for s in value):
                raise ValueError("stop sequences must not be empty")
        elif value == "":
            raise ValueError("stop sequences must not be empty")
        return value

    def stop_list(self) -> list[str]:
        """Stop sequences as a list."""
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    def include_usage(self) -> bool:
        """Whether a streamed response ends with a usage chunk."""
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(SamplingRequest):
    """``POST /v1/chat/completions``."""

    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    tools: Annotated[list[Tool], Field(max_length=128)] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None

    @model_validator(mode="after")
    def _tool_choice(self) -> ChatCompletionRequest:
        names = [tool.function.name for tool in self.tools or []]
        choice = self.tool_choice
        if choice is not None and choice != "none" and choice != "auto" and not names:
            raise ValueError("`tool_choice` needs `tools`")
        if isinstance(choice, NamedToolChoice) and choice.function.name not in names:
            raise ValueError(f"`tool_choice` names the function {choice.function.name!r}, which is not in `tools`")
        if len(set(names)) != len(names):
            raise ValueError("function names in `tools` must be unique")
        return self

    def tool_mode(self) -> Literal["none", "auto", "forced"]:
        """``none``: no tools offered; ``auto``: the model may call one; ``forced``: it must."""
        if not self.tools or self.tool_choice == "none":
            return "none"
        return "auto" if self.tool_choice in (None, "auto") else "forced"

    def forced_tools(self) -> list[Tool]:
        """The tools a forced tool choice may call (the named one, or all)."""
        choice = self.tool_choice
        if isinstance(choice, NamedToolChoice):
            return [t for t in self.tools or [] if t.function.name == choice.function.name]
        return list(self.tools or [])

    @model_validator(mode="after")
    def _merge_max_tokens(self) -> ChatCompletionRequest:
        # max_completion_tokens is the newer name of max_tokens; it wins when both are set.
        if self.max_completion_tokens is not None:
            self.max_tokens = self.max_completion_tokens
        return self


class CompletionRequest(SamplingRequest):
    """``POST /v1/completions`` (legacy text completions)."""

    prompt: str | Annotated[list[str], Field(min_length=1, max_length=MAX_PROMPTS)]
    echo: bool = False
    suffix: str | None = None

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt_count(cls, value: object) -> object:
        # Checked before the members are validated, so a huge list is refused at once and with a
        # message about its size rather than about the str/list union.
        if isinstance(value, list) and not 1 <= len(value) <= MAX_PROMPTS:
            raise ValueError(f"a prompt list must hold between 1 and {MAX_PROMPTS} prompts")
        return value

    def prompts(self) -> list[str]:
        """The prompt(s) as a list."""
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


class Usage(BaseModel):
    """Token counts of one response."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, prompt_tokens: int, completion_tokens: int) -> Usage:
        """Builds a usage record, deriving the total."""
        return cls(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
        )


FinishReason = Literal["stop", "length", "content_filter", "tool_calls"]


class AssistantMessage(BaseModel):
    """The generated message of a chat choice (``content`` is null when it calls tools)."""

    role: Literal["assistant"] = "assistant"
    content: str | None
    tool_calls: list[ToolCall] | None = None

    @model_serializer(mode="wrap")
    def _drop_unset_calls(self, handler):
        body = handler(self)
        if body.get("tool_calls") is None:
            body.pop("tool_calls", None)
        return body


class ChatChoice(BaseModel):
    """One choice of a chat completion."""

    index: int
    message: AssistantMessage
    finish_reason: FinishReason | None
    logprobs: None = None


class ChatCompletion(BaseModel):
    """A non-streamed chat completion."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[ChatChoice]
    usage: Usage
    system_fingerprint: str | None = None


class ChatDelta(BaseModel):
    """The increment of a streamed chat choice; unset fields are left out, as OpenAI does."""

    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None

    @model_serializer(mode="wrap")
    def _drop_unset(self, handler):
        return {key: value for key, value in handler(self).items() if value is not None}


class ChatChunkChoice(BaseModel):
    """One choice of a chat stream chunk."""

    index: int
    delta: ChatDelta
    finish_reason: FinishReason | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    """One ``data:`` event of a streamed chat completion."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


class CompletionChoice(BaseModel):
    """One choice of a text completion (streamed or not)."""

    index: int
    text: str
    finish_reason: FinishReason | None
    logprobs: None = None


class Completion(BaseModel):
    """A text completion, or one chunk of a streamed one (OpenAI uses the same object)."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


class ModelCard(BaseModel):
    """One entry of ``GET /v1/models``."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "mistral-serve"


class ModelList(BaseModel):
    """``GET /v1/models``."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorBody(BaseModel):
    """The inner object of OpenAI's error envelope."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """OpenAI's error envelope: ``{"error": {...}}``."""

    error: ErrorBody


# ---- /v1/moderations ------------------------------------------------------------------------
