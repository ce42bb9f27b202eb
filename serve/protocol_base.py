"""The base of the OpenAI request models: unknown fields ignored, NaN, infinities and lone
surrogates refused (a 400 naming the field)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, field_validator


def _has_lone_surrogate(value: object) -> bool:
    if isinstance(value, str):
        # Fast path: only strings that cannot be encoded can hold a lone surrogate.
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, (list, tuple)):
        return any(_has_lone_surrogate(item) for item in value)
    return False


class RequestModel(BaseModel):
    """Base of every request body model."""

    # NaN and infinities (which Python's JSON parser accepts) are never valid parameters.
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _no_lone_surrogates(cls, value: object) -> object:
        # JSON may escape a lone UTF-16 surrogate ("\ud800"); it is not text, no tokenizer or
        # encoder takes it, so it is refused here with a 400 naming the field.
        if _has_lone_surrogate(value):
            raise ValueError("the text contains an invalid Unicode code point (a lone surrogate)")
        return value
