"""The moderation layer of mistral-serve: NeMo Guardrails policies run on every input and output.

Modules (import them directly; this package imports nothing heavy on its own):

- :mod:`guardrails.verdict` - ``Verdict`` and ``Finding``, the values moderation returns.
- :mod:`guardrails.policy` - loading and validating policies (``load_policies``), versions.
- :mod:`guardrails.moderator` - ``Moderator``: runs a policy's rails, no Ray needed.
- :mod:`guardrails.stream` - ``StreamGuard``: windowed output rails on a token stream.
- :mod:`guardrails.deployment` - ``ModerationDeployment``, the Ray Serve deployment.
- :mod:`guardrails.client` - ``RayModerationClient``, what the gateway calls.
- :mod:`guardrails.provider` - the NeMo LLM provider that calls the Engine deployment.
- :mod:`guardrails.moderations` - the Moderations API models and response builder.
- :mod:`guardrails.metrics`, :mod:`guardrails.audit` - Prometheus metrics and audit events.
"""

from .verdict import Finding, Verdict, first_blocked

__all__ = ["Finding", "Verdict", "first_blocked"]
