"""The mistral-serve section of a policy: ``custom_data.mistral_serve`` in its ``config.yml``.

NeMo Guardrails keeps ``custom_data`` for integrations and passes it through untouched; everything
here is validated strictly, so a typo in a policy fails startup instead of being ignored.
Which rails run is not configured here but by the NeMo-standard ``rails.input.flows`` and
``rails.output.flows``; this section only tunes them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .rails.pii import ENTITIES

# Mistral 7B paper (arXiv 2310.06825), section 5.1.
GUARDRAIL_SYSTEM_PROMPT = (
    "Always assist with care, respect, and truth. Respond with utmost utility yet securely. Avoid harmful, "
    "unethical, prejudiced, or negative content. Ensure replies promote fairness and positivity."
)

OnError = Literal["open", "closed"]
FindingAction = Literal["block", "mask"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RailSettings(_Strict):
    """Settings every rail has."""

    on_error: OnError = Field(
        default="closed",
        description="When the rail raises or times out: `closed` blocks the text, `open` lets it pass "
        "(both are counted in mistral_serve_moderation_rail_errors_total).",
    )
    timeout_s: float | None = Field(
        default=None, gt=0, description="Longest a check may take before it counts as an error (None: no limit)."
    )


def _all_masked() -> dict[str, FindingAction]:
    return {str(entity): "mask" for entity in ENTITIES}


class PersonalDataSettings(RailSettings):
    """The personal_data rail."""

    entities: dict[str, FindingAction] = Field(
        default_factory=lambda: _all_masked(),
        description="Entity to action (`mask` or `block`); entities left out are not checked. "
        f"Known: {list(ENTITIES)}.",
    )

    @model_validator(mode="after")
    def _known_entities(self) -> PersonalDataSettings:
        unknown = sorted(set(self.entities) - set(ENTITIES))
        if unknown:
            raise ValueError(f"unknown personal data entities {unknown}; known: {list(ENTITIES)}")
        return self


class SecretsSettings(RailSettings):
    """The secrets rail."""

    action: FindingAction = Field(default="block", description="`block` the text or `mask` the secret.")
    generic: bool = Field(
        default=True, description="Also check `password = ...`-style assignments and credentials in URLs."
    )


class PromptInjectionSettings(RailSettings):
    """The prompt_injection rail."""

    threshold: float = Field(default=1.0, gt=0, description="Summed signal weight at which an input is blocked.")


class DeniedTermsSettings(RailSettings):
    """The denied_terms rail."""

    action: FindingAction = Field(default="block", description="`block` the text or `mask` the terms.")
    topics: dict[str, list[str]] = Field(
        default_factory=dict, description="Topic name to its terms or phrases (whole words, any case)."
    )


# OpenAI's moderation categories, and the ones this service adds.
OPENAI_CATEGORIES: tuple[str, ...] = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent",
    "self-harm", "self-harm/intent", "self-harm/instructions", "sexual", "sexual/minors", "violence",
    "violence/graphic",
)
OWN_CATEGORIES: tuple[str, ...] = ("jailbreak", "prompt_injection", "pii", "secrets", "code_injection", "denied_topic")


class ClassifierSettings(RailSettings):
    """The learned classifier rail (``classifier input``)."""

    model: str = Field(
        default="moderation-linear-v1",
        description="A model packaged under guardrails/models/ by name, or a model directory by path.",
    )
    thresholds: dict[Literal["attack", "harmful"], float] = Field(
        default_factory=dict,
        description="Override the model's thresholds (picked on the dev split for <= 1 % benign false flags).",
    )
    block_categories: list[str] | None = Field(
        default=None,
        description="The categories this rail blocks (None: every category the model names); others pass.",
    )

    @model_validator(mode="after")
    def _known_categories(self) -> ClassifierSettings:
        known = set(OPENAI_CATEGORIES) | {"jailbreak", "prompt_injection"}
        unknown = sorted(set(self.block_categories or ()) - known)
        if unknown:
            raise ValueError(f"unknown classifier categories {unknown}; known: {sorted(known)}")
        if any(not 0 < t < 1 for t in self.thresholds.values()):
            raise ValueError("classifier thresholds are probabilities in (0, 1)")
        return self


class GuardModelSettings(RailSettings):
    """The guard-model rail (``guard model input``): a sequence classifier run with transformers."""

    model: str = Field(description="A Hugging Face hub id or a local directory of the classifier.")
    threshold: float = Field(default=0.5, gt=0, lt=1, description="Probability at which a label flags.")
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Model label -> moderation category (labels left out, or mapped to `safe`, never flag).",
    )
    device: str = Field(default="cpu", description="torch device (`cuda`, `cuda:1`, `cpu`).")
    max_length: int = Field(default=512, ge=16, description="Tokens of the input the model reads (the tail is cut).")


class ModelRailSettings(RailSettings):
    """A rail that calls a model (self check input/output): it fails open by default."""

    on_error: OnError = Field(default="open", description="When the model call fails or times out.")
    timeout_s: float | None = Field(default=30.0, gt=0, description="Longest a model check may take.")


class StreamSettings(_Strict):
    """How output rails run on a token stream.

    Text is checked in windows: once ``window_chars`` new characters beyond the held-back tail have
    arrived, the unreleased text plus ``lookback_chars`` of already released text is checked, and
    everything but the last ``hold_chars`` is released. A span a rail recognizes within
    ``hold_chars`` characters is therefore always seen whole before any of it is released.
    """

    window_chars: int = Field(default=32, ge=1, description="New characters between two checks.")
    hold_chars: int = Field(
        default=64, ge=0, description="Tail kept back after each check (longest span a rail must see whole)."
    )
    lookback_chars: int = Field(default=256, ge=0, description="Released text re-checked as context.")


_RAIL_SETTINGS: dict[str, type[RailSettings]] = {
    "personal_data": PersonalDataSettings,
    "secrets": SecretsSettings,
    "prompt_injection": PromptInjectionSettings,
    "denied_terms": DeniedTermsSettings,
    "code_injection": RailSettings,
    "classifier": ClassifierSettings,
    "guard_model": GuardModelSettings,
    "self_check_input": ModelRailSettings,
    "self_check_output": ModelRailSettings,
}


def rail_settings_type(rail: str) -> type[RailSettings]:
    """The settings model of a rail (library rails without their own use :class:`RailSettings`)."""
    return _RAIL_SETTINGS.get(rail, RailSettings)


class PolicySettings(_Strict):
    """``custom_data.mistral_serve`` of a policy."""

    description: str = Field(default="", description="What the policy is for (shown in logs).")
    guardrail_system_prompt: bool = Field(
        default=False,
        description="Prepend the Mistral 7B paper's guardrail system prompt to every chat request.",
    )
    system_prompt_text: str = Field(
        default=GUARDRAIL_SYSTEM_PROMPT, description="The guardrail system prompt (the paper's by default)."
    )
    stream: StreamSettings = Field(default_factory=StreamSettings, description="Windowed output rails on streams.")
    rails: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Per-rail settings, keyed by rail name (personal_data, self_check_input ...)."
    )

    def rail(self, name: str) -> RailSettings:
        """The validated settings of one rail (defaults where the policy sets none)."""
        return rail_settings_type(name).model_validate(self.rails.get(name, {}))
