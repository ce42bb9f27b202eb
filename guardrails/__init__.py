"""The moderation layer of mistral-serve: NeMo Guardrails policies run on every input and output.

Modules (import them directly; this package imports nothing heavy on its own):

- :mod:`guardrails.verdict` - ``Verdict`` and ``Finding``, the values moderation returns.
- :mod:`guardrails.policy` - loading and validating policies (``load_policies``), versions.
- :mod:`guardrails.moderator` - ``Moderator``: runs a policy's rails, no Ray needed.
- :mod:`guardrails.stream` - ``StreamGuard``: windowed output rails on a token stream.
- :mod:`guardrails.deployment` - ``ModerationDeployment``, the Ray Serve deployment.
- :mod:`guardrails.client` - ``ModerationClient`` (the one interface the gateway calls) and
  ``RayModerationClient``.
- :mod:`guardrails.provider` - the NeMo LLM provider that calls the Engine deployment.
- :mod:`guardrails.metrics`, :mod:`guardrails.audit` - the metrics interface (the platform injects
  its metrics) and audit events.

The layer returns verdicts only: the OpenAI ``/v1/moderations`` models are in ``serve/protocol.py``
and the gateway maps verdicts to them (``serve/gateway/moderation_results.py``). From ``serve`` it
imports only the engine interface, ``serve.engine.api`` (enforced by import-linter).
"""

from .verdict import Finding, Verdict, first_blocked

__all__ = ["Finding", "Verdict", "first_blocked"]
