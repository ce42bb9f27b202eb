"""OpenAI's tool calling and response-format models (re-exported by :mod:`serve.protocol`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .protocol_base import RequestModel


class _Request(RequestModel):
    # Pydantic merges this into the base's config (unknown fields ignored, no NaN or lone surrogates).
    model_config = ConfigDict(populate_by_name=True)


class FunctionCall(BaseModel):
    """The function a tool call invokes, with its arguments as a JSON text."""

    name: str
    arguments: str


class ToolCall(BaseModel):
    """One tool call of an assistant message."""

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class FunctionDefinition(_Request):
    """A function the model may call."""

    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Request):
    """An entry of ``tools``."""

    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(_Request):
    """``{"name": ...}`` of a named tool choice."""

    name: str


class NamedToolChoice(_Request):
    """``tool_choice`` naming the function the model must call."""

    type: Literal["function"]
    function: NamedFunction


class JsonSchemaFormat(_Request):
    """``response_format.json_schema``."""

    name: Annotated[str, Field(min_length=1, max_length=64)]
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Request):
    """``response_format``: plain text, any JSON object, or JSON matching a schema."""

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("`response_format.json_schema` is required when `type` is `json_schema`")
        return self


class FunctionCallDelta(BaseModel):
    """The function part of a streamed tool call."""

    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(BaseModel):
    """A streamed tool call: ``index`` says which call of the message it extends."""

    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: FunctionCallDelta | None = None
