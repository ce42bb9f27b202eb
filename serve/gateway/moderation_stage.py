"""The gateway's moderation stage: input rails before generation, output rails on what it yields.

It composes :mod:`guardrails` (through its client Protocol: the Moderation deployment's handle in
production, an in-process ``Moderator`` in tests) with the pipeline's event streams, and turns
verdicts into API errors and ``/v1/moderations`` responses. Streams are
checked window by window with a :class:`guardrails.stream.StreamGuard` per choice, so the client
only ever receives text that passed; whole answers are checked whole.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field

from guardrails.audit import AuditLog
from guardrails.client import ModerationClient, ModerationUnavailableError
from guardrails.policy import PolicyInfo
from guardrails.stream import StreamGuard, StreamStep, stream_guard
from guardrails.verdict import Verdict, first_blocked

from .. import metrics
from ..engine.types import EngineOutput
from ..errors import ContentFilterError, InternalError, ServiceUnavailableError
from ..protocol import ModerationResponse
from ..tenancy.keys import Principal
from .moderation_results import moderation_response

logger = logging.getLogger(__name__)

Outputs = AsyncGenerator[tuple[int, EngineOutput], None]


def _unavailable() -> ServiceUnavailableError:
    # Fail closed: content nobody could check is not served.
    return ServiceUnavailableError(
        message="Content moderation is temporarily unavailable. Please retry shortly.",
        code="moderation_unavailable", headers={"Retry-After": "1"},
    )


def _policy_missing() -> InternalError:
    # Fail closed: a team whose policy does not exist gets no unmoderated (or default) service.
    return InternalError(
        message="Your team's moderation policy is not available on this deployment. "
                "Ask an administrator to check the team's policy.",
        code="moderation_policy_not_found",
    )


@dataclass
class OutputCheck:
    """What the output rails of one request need to know."""

    principal: Principal
    policy: PolicyInfo
    request_id: str
    context: str  # the last user turn: output rails judge the answer to it
    choices: int
    stopped: set[int] = field(default_factory=set)  # choices cut by a rail


class ModerationStage:
    """Input and output rails of the caller's policy.

    Args:
        client: Runs the rails (Moderation deployment handle or in-process Moderator).
        policies: Name, version, system prompt and stream settings of each policy.
        default_policy: Policy of teams with none set.
        audit: Where the per-stream mask summary is recorded (window checks do not audit masks).
    """

    def __init__(self, client: ModerationClient, policies: dict[str, PolicyInfo], default_policy: str,
                 audit: AuditLog | None = None) -> None:
        self._client = client
        self._policies = policies
        self._default = default_policy
        self._audit = audit or AuditLog()

    def policy(self, principal: Principal) -> PolicyInfo:
        """The caller's policy (the default one for a team with none set); resolve it once per request.

        Raises:
            InternalError: the team names a policy this deployment does not have (500,
                ``moderation_policy_not_found``; fail closed, never the default policy instead).
        """
        name = principal.team.policy or self._default
        if name not in self._policies:
            logger.error("team %s names unknown moderation policy %r; refusing", principal.team.name, name)
            raise _policy_missing()
        return self._policies[name]

    async def check_inputs(self, principal: Principal, policy: PolicyInfo, texts: Sequence[str], request_id: str,
                           param: str) -> list[str]:
        """Runs the input rails; returns the texts to generate from (masked where a rail masks).

        Raises:
            ContentFilterError: a rail blocked the input (400).
            ServiceUnavailableError: moderation could not run (503; fail closed).
        """
        try:
            verdicts: list[Verdict] = await self._client.check_inputs(
                list(texts), policy.name, request_id=request_id, team=principal.team.name
            )
        except ModerationUnavailableError:
            raise _unavailable() from None
        blocked = first_blocked(verdicts)
        if blocked is not None:
            if blocked.failed:  # a fail-closed rail broke: the content was not judged
                raise _unavailable()
            metrics.record_block(blocked.rail or "unknown", "refused", policy.name, principal.team.name)
            raise ContentFilterError(blocked.rail, param)
        return [v.text if v.action == "masked" else t for v, t in zip(verdicts, texts)]

    async def moderations(self, principal: Principal, texts: Sequence[str], request_id: str) -> ModerationResponse:
        """``POST /v1/moderations``: the verdicts of the caller's input rails, in OpenAI's shape."""
        policy = self.policy(principal)
        try:
            verdicts = await self._client.check_inputs(list(texts), policy.name, request_id=request_id,
                                                       team=principal.team.name)
        except ModerationUnavailableError:
            raise _unavailable() from None
        return moderation_response(verdicts, request_id)

    def moderate_stream(self, outputs: Outputs, check: OutputCheck) -> Outputs:
        """Releases each choice's text only after its window passed; a blocked window ends the
        choice with ``finish_reason: "content_filter"``."""
        return self._stream(outputs, check)

    async def _stream(self, outputs: Outputs, check: OutputCheck) -> Outputs:
        guards: dict[int, StreamGuard] = {}
        try:
            async for item in self._stream_steps(outputs, check, guards):
                yield item
                if len(check.stopped) == check.choices:
                    return  # every choice was cut: stop generating
        finally:
            await outputs.aclose()

    async def _stream_steps(self, outputs: Outputs, check: OutputCheck, guards: dict[int, StreamGuard]) -> Outputs:
        async for index, output in outputs:
            if index in check.stopped:
                continue
            guard = guards.get(index)
            if guard is None:
                guard = guards[index] = stream_guard(
                    self._client.check_output, check.policy.name, check.policy.stream,
                    request_id=check.request_id, team=check.principal.team.name, context=check.context,
                )
            step = await self._guarded(guard.feed(output.text)) if output.text else StreamStep()
            text = step.text
            if not step.blocked and output.finish_reason is not None:
                final = await self._guarded(guard.finish())
                text += final.text
                step = final
                summary = guard.masked_summary()
                if summary is not None:
                    self._audit.record(summary, request_id=check.request_id, team=check.principal.team.name, text="")
            if step.blocked:
                check.stopped.add(index)
                metrics.record_block((step.verdict.rail if step.verdict else None) or "unknown", "stream_cut", check.policy.name,
                                     check.principal.team.name)
                yield index, EngineOutput(text=text, num_tokens=output.num_tokens, finish_reason="content_filter")
                continue
            yield index, EngineOutput(text=text, num_tokens=output.num_tokens, finish_reason=output.finish_reason)

    async def moderate_whole(self, outputs: Outputs, check: OutputCheck) -> Outputs:
        """Checks each choice's whole text once it is complete; a blocked answer is returned empty
        with ``content_filter``: only text that passed every check reaches the caller, and the
        whole-answer check is the one that failed (its windows passing proves nothing about it)."""
        texts: dict[int, str] = {}
        tokens: dict[int, int] = {}
        reasons: dict[int, str | None] = {}
        try:
            async for index, output in outputs:
                texts[index] = texts.get(index, "") + output.text
                tokens[index] = tokens.get(index, 0) + output.num_tokens
                reasons[index] = output.finish_reason or reasons.get(index)
        finally:
            await outputs.aclose()
        for index in sorted(texts):
            verdict = await self._guarded(self._client.check_output(
                texts[index], check.policy.name, request_id=check.request_id, team=check.principal.team.name,
                context=check.context,
            ))
            text, reason = texts[index], reasons[index]
            if verdict.blocked:
                text, reason = "", "content_filter"
                check.stopped.add(index)
                metrics.record_block(verdict.rail or "unknown", "answer_cut", check.policy.name,
                                     check.principal.team.name)
            elif verdict.action == "masked":
                text = verdict.text
            yield index, EngineOutput(text=text, num_tokens=tokens[index], finish_reason=reason)  # type: ignore[arg-type]

    @staticmethod
    async def _guarded(awaitable):
        try:
            return await awaitable
        except ModerationUnavailableError:
            raise _unavailable() from None
