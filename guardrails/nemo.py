"""Running a policy under NeMo Guardrails' own ``LLMRails`` (Colang runtime).

mistral-serve never does this on the request path (see :mod:`guardrails.moderator` for why), but the
policies are ordinary NeMo configs, and this is how one proves it: the benchmark compares the two
paths side by side, and tests check they reach the same decisions.
"""

from __future__ import annotations

from typing import Any

from nemoguardrails import LLMRails
from nemoguardrails.actions.rail_outcome import RailOutcome, TransformTarget

from .policy import Policy
from .rails.base import apply_masks

ACTION_NAME = "mistral_serve_rail"
_TARGETS = {"input": TransformTarget.USER_MESSAGE, "output": TransformTarget.BOT_MESSAGE}


def rail_action(policy: Policy):
    """The Colang action ``mistral_serve_rail(rail, source, text)`` over the policy's offline rails."""
    rails = {(s.name, s.direction): s.offline for s in policy.input_rails + policy.output_rails if s.offline}

    async def mistral_serve_rail(rail: str, source: str, text: str | None = None, **_: Any) -> RailOutcome:
        found = rails[rail, source].scan(text or "")  # type: ignore[index]
        metadata = {"detections": [f.kind for f in found]}
        if any(f.action == "block" for f in found):
            return RailOutcome.block(metadata=metadata)
        if found:
            return RailOutcome.transform([(_TARGETS[source], apply_masks(text or "", found))], metadata=metadata)
        return RailOutcome.allow(metadata=metadata)

    return mistral_serve_rail


def register_actions(rails: LLMRails, policy: Policy) -> LLMRails:
    """Registers this package's actions on an ``LLMRails`` built from ``policy.config``."""
    rails.register_action(rail_action(policy), name=ACTION_NAME)
    return rails


def llm_rails(policy: Policy, **kwargs: Any) -> LLMRails:
    """An ``LLMRails`` for the policy with the actions registered (``kwargs`` go to ``LLMRails``)."""
    return register_actions(LLMRails(policy.config, **kwargs), policy)
