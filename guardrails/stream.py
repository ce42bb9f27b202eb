"""Output rails on a token stream: only text that has passed them is released.

The gateway feeds a :class:`StreamGuard` the text deltas of one choice as the engine produces them
and sends the client exactly what :meth:`StreamGuard.feed` and :meth:`StreamGuard.finish` return.

Windows (see :class:`~guardrails.policy_settings.StreamSettings`): once ``window_chars`` characters
beyond the held-back tail are pending, the pending text plus ``lookback_chars`` of released text is
checked, and all but the last ``hold_chars`` pending characters is released (masked where a rail
masks). A masked span that crosses the release point, or touches the end of the window (it may
go on), is held back whole. So any unsafe span a rail recognizes within ``hold_chars`` characters
is seen whole before its first character could be released, and the first text reaches the client
after ``window_chars + hold_chars`` characters, not at the end of the response.

A blocked window ends the stream: nothing more is released, and the verdict says which rail.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from .policy_settings import StreamSettings
from .rails.base import apply_masks
from .verdict import Finding, Verdict

WindowCheck = Callable[[str], Awaitable[Verdict]]


class CheckOutput(Protocol):
    """``check_output`` of a moderation client (the Moderator, or the deployment's client)."""

    def __call__(self, text: str, policy: str | None = None, *, request_id: str | None = None,
                 team: str | None = None, context: str | None = None, window: bool = False) -> Awaitable[Verdict]: ...


def window_check(check_output: CheckOutput, policy: str | None, *, request_id: str | None = None,
                 team: str | None = None, context: str | None = None) -> WindowCheck:
    """The check of one stream window: the output rails of ``policy`` with ``window=True``.

    The one place this closure is written: :func:`stream_guard`, the moderator and the gateway use it.
    """

    async def check(window: str) -> Verdict:
        return await check_output(window, policy, request_id=request_id, team=team, context=context, window=True)

    return check


def stream_guard(check_output: CheckOutput, policy: str | None, settings: StreamSettings, *,
                 request_id: str | None = None, team: str | None = None, context: str | None = None) -> StreamGuard:
    """A :class:`StreamGuard` for one output stream (one per choice) of ``policy``."""
    return StreamGuard(window_check(check_output, policy, request_id=request_id, team=team, context=context), settings)


@dataclass(frozen=True)
class StreamStep:
    """What to send after one feed.

    Attributes:
        text: Text that passed the output rails, to send now (may be empty).
        verdict: The blocking verdict once the stream is blocked, else None.
    """

    text: str = ""
    verdict: Verdict | None = None

    @property
    def blocked(self) -> bool:
        """Whether the stream must end now with ``finish_reason: "content_filter"``."""
        return self.verdict is not None


class StreamGuard:
    """Windowed output moderation of one stream.

    Args:
        check: Runs the output rails on one window (``Moderator.check_output`` or a deployment
            handle call), returning its verdict.
        settings: Window sizes (the policy's ``stream`` settings).
    """

    def __init__(self, check: WindowCheck, settings: StreamSettings) -> None:
        self._check = check
        self._settings = settings
        self._pending = ""
        self._released = ""  # tail of the released text, the look-back context
        self._verdict: Verdict | None = None
        self._last: Verdict | None = None
        self._released_masks: list[Finding] = []
        self.checks = 0

    @property
    def blocked(self) -> bool:
        """Whether a window was blocked."""
        return self._verdict is not None

    def masked_summary(self) -> Verdict | None:
        """One masked verdict for the whole stream, if released text was masked and nothing blocked.

        Window checks do not audit masks (several windows see the same span); the gateway audits this
        once per stream, e.g. ``AuditLog().record(summary, request_id=..., team=..., text="")``.
        """
        if self._verdict is not None or not self._released_masks or self._last is None:
            return None
        findings = tuple(dataclasses.replace(f, start=-1, end=-1) for f in self._released_masks)
        scores = dict(self._last.scores)
        for f in findings:
            scores[f.category] = max(scores.get(f.category, 0.0), f.score)
        return dataclasses.replace(
            self._last, action="masked", rail=findings[0].rail, text="", findings=findings, scores=scores,
            failed_rails=(),
        )

    async def feed(self, delta: str) -> StreamStep:
        """Adds generated text; returns what may be sent now."""
        if self._verdict is not None:
            return StreamStep(verdict=self._verdict)
        self._pending += delta
        if len(self._pending) - self._settings.hold_chars < self._settings.window_chars:
            return StreamStep()
        return await self._run(final=False)

    async def finish(self) -> StreamStep:
        """Checks and releases what is still held, at the end of the stream."""
        if self._verdict is not None:
            return StreamStep(verdict=self._verdict)
        if not self._pending:
            return StreamStep()
        return await self._run(final=True)

    async def _run(self, final: bool) -> StreamStep:
        lookback = self._settings.lookback_chars
        context = self._released[-lookback:] if lookback else ""
        pending = self._pending
        verdict = await self._check(context + pending)
        self.checks += 1
        self._last = verdict
        unplaceable = [f for f in verdict.findings if f.action == "mask" and not f.has_span]
        if not verdict.blocked and unplaceable:
            # A rail rewrote the window without saying where: it cannot be released safely.
            verdict = dataclasses.replace(verdict, action="blocked", text="", rail=unplaceable[0].rail)
        if verdict.blocked:
            self._verdict, self._pending = verdict, ""
            return StreamStep(verdict=verdict)
        masks = [_shift(f, len(context)) for f in verdict.findings if f.action == "mask" and f.has_span]
        cut = len(pending) if final else max(0, len(pending) - self._settings.hold_chars)
        while not final:  # hold back whole every span that crosses the cut or may go on
            held = [f for f in masks if f.end > 0 and f.start < cut and (f.end > cut or f.end >= len(pending))]
            new_cut = min(max(f.start, 0) for f in held) if held else cut
            if new_cut == cut:
                break
            cut = new_cut
        released = [_clip(f, cut) for f in masks if f.end > 0 and f.start < cut]
        self._released_masks.extend(released)
        text = apply_masks(pending[:cut], released)
        self._pending = pending[cut:]
        self._released = (self._released + text)[-max(lookback, 1):]
        return StreamStep(text=text)


def _shift(finding: Finding, offset: int) -> Finding:
    return dataclasses.replace(finding, start=finding.start - offset, end=finding.end - offset)


def _clip(finding: Finding, cut: int) -> Finding:
    # A span that began in already released context only masks its pending part.
    return dataclasses.replace(finding, start=max(finding.start, 0), end=min(finding.end, cut))
