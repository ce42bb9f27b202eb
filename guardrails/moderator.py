"""The moderation core: runs a policy's rails on a text and returns a :class:`Verdict`.

Usable without Ray (tests, benchmarks, ops tools); the Moderation deployment wraps one instance.

Order of work on one text:

1. Every offline rail of the direction scans the original text (microseconds each), so all spans
   refer to the same text. A blocking finding decides; its rail is the first in policy order.
2. Otherwise masks are applied in one pass, and library rails (self check input/output, regex ...)
   run in policy order on the masked text, so no model ever sees what was masked.

A rail that raises or times out is handled by its ``on_error`` setting: ``closed`` blocks (the
verdict says ``failed``), ``open`` lets the text pass; both are counted and logged, never raised.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from nemoguardrails.actions.rail_outcome import RailOutcome

from .audit import AuditLog
from .metrics import CountingMetrics, ModerationMetrics
from .policy import Policy, PolicyError, PolicyInfo, PolicySet, RailSpec
from .provider import EngineLLMError
from .rails.base import apply_masks
from .stream import StreamGuard, stream_guard
from .verdict import Action, Direction, Finding, Verdict

logger = logging.getLogger(__name__)

LLMFactory = Callable[[Policy], Mapping[str, Any]]


def nemo_llms(policy: Policy) -> dict[str, Any]:
    """The models of a policy's ``models:`` section, created by NeMo's registered providers.

    Raises:
        PolicyError: a provider is not registered or rejects the configuration.
    """
    from nemoguardrails.llm.models.initializer import init_llm_model

    llms: dict[str, Any] = {}
    for model in policy.config.models:
        if model.type in ("embeddings", "jailbreak_detection"):
            continue
        try:
            llms[model.type] = init_llm_model(
                model_name=model.model or "",
                provider_name=model.engine,
                kwargs=dict(model.parameters or {}),
                mode=model.mode,
            )
        except Exception as exc:  # noqa: BLE001 - NeMo raises ValueError/ModelInitializationError/ImportError
            raise PolicyError(
                f"policy {policy.name!r}: cannot create its {model.type!r} model with engine {model.engine!r} ({exc}); "
                "model rails call the served Mistral through the provider that "
                "guardrails.provider.register_engine_provider() registers"
            ) from None
    return llms


class Moderator:
    """Checks inputs and outputs against policies.

    Args:
        policies: The loaded policies.
        llms: Creates the models of a policy that has model rails (default: :func:`nemo_llms`).
        metrics: Where to count (the Moderation deployment injects the platform's metrics;
            default: in memory).
        audit: Where audit events go (default: the ``mistral_serve.audit`` logger, without text).
    """

    def __init__(
        self,
        policies: PolicySet,
        *,
        llms: LLMFactory | None = None,
        metrics: ModerationMetrics | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self.policies = policies
        self.metrics = metrics or CountingMetrics()
        self.audit = audit or AuditLog()
        make_llms = llms or nemo_llms
        self._rails: dict[tuple[str, Direction], tuple[RailSpec, ...]] = {}
        for policy in policies:
            models = make_llms(policy) if policy.needs_llm else {}
            for direction in ("input", "output"):
                self._rails[policy.name, direction] = tuple(
                    _bind(spec, models) for spec in policy.rails(direction)
                )
        self._timers: dict[tuple[str, str], Any] = {}

    async def check_input(
        self, text: str, policy: str | None = None, *, request_id: str | None = None, team: str | None = None
    ) -> Verdict:
        """Runs the input rails of ``policy`` (the default one for None) on ``text``.

        Raises:
            UnknownPolicyError: no policy has that name.
        """
        return await self._check(text, "input", policy, request_id, team, None, audit_masks=True)

    async def check_inputs(
        self, texts: Sequence[str], policy: str | None = None, *, request_id: str | None = None, team: str | None = None
    ) -> list[Verdict]:
        """Input rails on several texts (the messages of a chat, a list of prompts), concurrently."""
        checks = (self.check_input(t, policy, request_id=request_id, team=team) for t in texts)
        return list(await asyncio.gather(*checks))

    async def check_output(
        self,
        text: str,
        policy: str | None = None,
        *,
        request_id: str | None = None,
        team: str | None = None,
        context: str | None = None,
        window: bool = False,
    ) -> Verdict:
        """Runs the output rails of ``policy`` on ``text``; ``context`` is the user turn it answers.

        With ``window`` (a stream window), a masked verdict is not audited here: the same span is
        seen by several windows, so the stream's :meth:`StreamGuard.masked_summary` is audited once
        instead. Blocks are audited either way (a blocked stream ends).
        """
        return await self._check(text, "output", policy, request_id, team, context, audit_masks=not window)

    def info(self, policy: str | None = None) -> PolicyInfo:
        """The policy's name, version, system prompt and stream settings."""
        return self.policies.get(policy).info()

    def stream_guard(
        self,
        policy: str | None = None,
        *,
        request_id: str | None = None,
        team: str | None = None,
        context: str | None = None,
    ) -> StreamGuard:
        """A :class:`StreamGuard` that checks windows of one output stream in this process."""
        settings = self.policies.get(policy).stream
        return stream_guard(self.check_output, policy, settings, request_id=request_id, team=team, context=context)

    # ---- internals ----------------------------------------------------------------------------

    def _timer(self, rail: str, policy: str):
        key = (rail, policy)
        if key not in self._timers:
            self._timers[key] = self.metrics.rail_seconds.labels(rail, policy)
        return self._timers[key]

    async def _check(
        self, text: str, direction: Direction, name: str | None, request_id: str | None, team: str | None,
        context: str | None, audit_masks: bool,
    ) -> Verdict:
        policy = self.policies.get(name)
        started = time.perf_counter()
        run = _Run(policy, direction, text)
        specs = self._rails[policy.name, direction]
        for spec in specs:
            if spec.offline is not None:
                self._scan(run, spec)
        blocking = {f.rail for f in run.findings if f.action == "block"}
        if blocking:
            run.block(next(s.name for s in specs if s.name in blocking))  # first in policy order
        elif run.blocked_by is None:
            run.text = apply_masks(text, run.findings)
            for spec in specs:
                if spec.library is not None and run.blocked_by is None:
                    await self._call(run, spec, context)  # NOTE: in order; a block stops the rest
        verdict = run.verdict()
        self.metrics.check_seconds.labels(direction, policy.name).observe(time.perf_counter() - started)
        self.metrics.verdicts.labels(direction, verdict.rail or "none", verdict.action, policy.name).inc()
        if audit_masks or verdict.blocked:
            self.audit.record(verdict, request_id=request_id, team=team, text=text)
        return verdict

    def _scan(self, run: _Run, spec: RailSpec) -> None:
        started = time.perf_counter()
        try:
            found = spec.offline.scan(run.original)  # type: ignore[union-attr]
        except Exception:
            logger.exception("rail %s failed (policy %s)", spec.name, run.policy.name)
            self._failed(run, spec)
            return
        finally:
            self._timer(spec.name, run.policy.name).observe(time.perf_counter() - started)
        run.findings.extend(found)
        action = "blocked" if any(f.action == "block" for f in found) else "masked" if found else "allowed"
        self.metrics.rail_actions.labels(spec.name, action, run.policy.name).inc()

    async def _call(self, run: _Run, spec: RailSpec, context: str | None) -> None:
        library = spec.library
        assert library is not None
        started = time.perf_counter()
        try:
            outcome = await asyncio.wait_for(library.check(run.text, context), spec.settings.timeout_s)
        except (TimeoutError, EngineLLMError) as exc:  # the engine's failures arrive as EngineLLMError
            logger.warning("rail %s failed (policy %s): %s", spec.name, run.policy.name, exc or type(exc).__name__)
            outcome = RailOutcome.failure()
        except Exception:  # a bug in a rail or in NeMo: still a failed rail, never a failed request
            logger.exception("rail %s raised (policy %s)", spec.name, run.policy.name)
            outcome = RailOutcome.failure()
        finally:
            self._timer(spec.name, run.policy.name).observe(time.perf_counter() - started)
        if outcome.failed:
            self._failed(run, spec)
            return
        action = "allowed"
        if outcome.is_blocked:
            action = "blocked"
            run.findings.append(Finding(spec.name, library.category, "flagged", "block"))
            run.block(spec.name)
        elif outcome.is_transform:
            action = "masked"
            run.text = next(iter(outcome.transform_text.values()))
            run.findings.append(Finding(spec.name, library.category, "transformed", "mask"))
        self.metrics.rail_actions.labels(spec.name, action, run.policy.name).inc()

    def _failed(self, run: _Run, spec: RailSpec) -> None:
        closed = spec.settings.on_error == "closed"
        action = "blocked" if closed else "allowed"
        self.metrics.rail_errors.labels(spec.name, action, run.policy.name).inc()
        run.failed_rails.append(spec.name)
        if closed and run.blocked_by is None:
            run.block(spec.name, failed=True)


class _Run:
    """The state of one check while its rails run."""

    def __init__(self, policy: Policy, direction: Direction, text: str) -> None:
        self.policy, self.direction, self.original, self.text = policy, direction, text, text
        self.findings: list[Finding] = []
        self.failed_rails: list[str] = []
        self.blocked_by: str | None = None
        self.failed = False

    def block(self, rail: str, failed: bool = False) -> None:
        if self.blocked_by is None:
            self.blocked_by, self.failed = rail, failed

    def verdict(self) -> Verdict:
        scores = dict.fromkeys(self.policy.categories(self.direction), 0.0)
        for f in self.findings:
            scores[f.category] = max(scores.get(f.category, 0.0), f.score)
        action: Action
        if self.blocked_by is not None:
            action, rail, text = "blocked", self.blocked_by, ""
        elif self.findings:
            action, rail, text = "masked", self.findings[0].rail, self.text
        else:
            action, rail, text = "allowed", None, self.original
        return Verdict(
            action=action, rail=rail, text=text, policy=self.policy.name, policy_version=self.policy.version,
            direction=self.direction, findings=tuple(sorted(self.findings, key=lambda f: f.start)), scores=scores,
            failed_rails=tuple(self.failed_rails), failed=self.failed,
        )


def _bind(spec: RailSpec, models: Mapping[str, Any]) -> RailSpec:
    if spec.library is None or not spec.library.needs_llm:
        return spec
    return RailSpec(spec.name, spec.flow, spec.direction, spec.settings, library=spec.library.bind(models))
