"""StreamGuard: the client receives only text that passed the output rails, window by window.

Property-style: many chunkings of the same outputs under several window settings, asserting on the
exact text released (what the gateway would send), with the real rails of the default policy.
"""

from __future__ import annotations

import random

import pytest

from guardrails.policy_settings import StreamSettings
from guardrails.stream import StreamGuard
from guardrails.verdict import Finding, Verdict

SETTINGS = [
    StreamSettings(window_chars=1, hold_chars=64, lookback_chars=0),
    StreamSettings(window_chars=8, hold_chars=64, lookback_chars=32),
    StreamSettings(window_chars=32, hold_chars=64, lookback_chars=256),
    StreamSettings(window_chars=50, hold_chars=96, lookback_chars=500),
]
PROSE = "The quarterly review covers latency, error budgets and the migration plan for the ledger. "
ENTITIES = ["john.smith@gmail.com", "+44 20 7946 0958", "4111 1111 1111 1111", "DE89 3704 0044 0532 0130 00"]
UNSAFE = ["AKIAIOSFODNN7EXAMPLE", "<script>alert(document.cookie)</script>", "-----BEGIN RSA PRIVATE KEY-----\nMIIE"]


def chunks(text: str, rng: random.Random) -> list[str]:
    out, i = [], 0
    while i < len(text):
        n = rng.randint(1, 12)
        out.append(text[i : i + n])
        i += n
    return out


async def run_stream(guard: StreamGuard, pieces: list[str]) -> tuple[str, list[str], Verdict | None]:
    """What a client receives: the concatenated releases, each release, and the blocking verdict."""
    releases, verdict = [], None
    for piece in pieces:
        step = await guard.feed(piece)
        releases.append(step.text)
        if step.blocked:
            verdict = step.verdict
            break
    else:
        step = await guard.finish()
        releases.append(step.text)
        verdict = step.verdict
    return "".join(releases), releases, verdict


def document(rng: random.Random, with_unsafe: str | None) -> str:
    parts = [PROSE * rng.randint(0, 3)]
    for entity in rng.sample(ENTITIES, k=2):
        parts += [f"Contact {entity} today. ", PROSE[: rng.randint(0, len(PROSE))]]
    if with_unsafe:
        parts += [f"Use {with_unsafe} here. "]
    parts.append(PROSE * rng.randint(1, 2))
    return "".join(parts)


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: f"w{s.window_chars}-h{s.hold_chars}-l{s.lookback_chars}")
async def test_allowed_streams_release_exactly_the_masked_text(offline, settings):
    rng = random.Random(settings.window_chars)
    for _ in range(8):
        text = document(rng, None)
        whole = await offline.check_output(text)
        guard = StreamGuard(lambda w: offline.check_output(w), settings)
        received, _, verdict = await run_stream(guard, chunks(text, rng))
        assert verdict is None
        assert received == whole.text  # masked exactly as the whole text is
        assert not any(entity in received for entity in ENTITIES)


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: f"w{s.window_chars}-h{s.hold_chars}-l{s.lookback_chars}")
@pytest.mark.parametrize("unsafe", UNSAFE, ids=["aws-key", "script", "private-key"])
async def test_blocked_window_never_reaches_the_client(offline, settings, unsafe):
    rng = random.Random(hash((settings.window_chars, unsafe)) % 1000)
    for _ in range(6):
        text = document(rng, unsafe)
        masked_before = (await offline.check_output(text[: text.index(unsafe)])).text
        guard = StreamGuard(lambda w: offline.check_output(w), settings)
        received, releases, verdict = await run_stream(guard, chunks(text, rng))
        assert verdict is not None and verdict.blocked and verdict.rail in ("secrets", "code_injection")
        # Only text from before the unsafe part, masked, ever left the guard; not one character of it.
        assert masked_before.startswith(received)
        assert unsafe[:4] not in received
        assert guard.blocked and (await guard.feed("more text")).text == "" and (await guard.finish()).blocked


async def test_first_text_is_released_long_before_the_end(offline):
    settings = StreamSettings(window_chars=32, hold_chars=64, lookback_chars=256)
    guard = StreamGuard(lambda w: offline.check_output(w), settings)
    text = PROSE * 30
    fed = 0
    for piece in chunks(text, random.Random(1)):
        fed += len(piece)
        if (await guard.feed(piece)).text:
            break
    assert fed <= settings.window_chars + settings.hold_chars + 12
    assert guard.checks == 1


@pytest.mark.parametrize("size", [1, 3, 7])
async def test_a_masked_span_that_may_go_on_is_held_whole(size):
    """A span longer than the hold (a private key body, say) is held until it ends, then masked whole."""
    import re

    async def mask_runs(window: str) -> Verdict:
        found = tuple(Finding("r", "c", "run", "mask", m.start(), m.end(), "[X]") for m in re.finditer("x+", window))
        return Verdict("masked" if found else "allowed", "r" if found else None, window, "p", "v", "output", found)

    text = "ab " + "x" * 40 + " cd " + "x" * 5 + " ef"
    guard = StreamGuard(mask_runs, StreamSettings(window_chars=2, hold_chars=4, lookback_chars=8))
    received, releases, verdict = await run_stream(guard, [text[i : i + size] for i in range(0, len(text), size)])
    assert verdict is None and received == "ab [X] cd [X] ef"
    assert all("x" not in r for r in releases)


async def test_unplaceable_rewrite_blocks_the_stream():
    async def rewriting(window: str) -> Verdict:
        finding = Finding("self_check_output", "self-check", "transformed", "mask")  # no span
        return Verdict("masked", "self_check_output", window.upper(), "p", "v", "output", (finding,))

    guard = StreamGuard(rewriting, StreamSettings(window_chars=4, hold_chars=4, lookback_chars=0))
    _, _, verdict = await run_stream(guard, ["abcdefghijkl"])
    assert verdict is not None and verdict.blocked and verdict.rail == "self_check_output"


async def test_a_stream_is_audited_once(policies, make_moderator, caplog):
    """Windows re-see held-back spans, so masks are audited once per stream, from the guard's summary."""
    import json
    import logging

    from guardrails.audit import AuditLog
    from guardrails.policy import PolicySet

    logger = logging.getLogger("tests.audit.stream")
    moderator = make_moderator(PolicySet({"default": policies.get("default")}, "default"), audit_logger=logger)
    text = PROSE + "Contact john.smith@gmail.com or +44 20 7946 0958. " + PROSE * 2
    with caplog.at_level(logging.INFO, logger=logger.name):
        guard = moderator.stream_guard(request_id="s1", team="t")
        received, _, verdict = await run_stream(guard, chunks(text, random.Random(3)))
        assert verdict is None and guard.checks > 3
        assert caplog.records == []  # no per-window mask events
        summary = guard.masked_summary()
        AuditLog(logger=logger).record(summary, request_id="s1", team="t", text="")
        blocked = moderator.stream_guard(request_id="s2", team="t")
        await run_stream(blocked, chunks(text + "key AKIAIOSFODNN7EXAMPLE " + PROSE, random.Random(4)))
        assert blocked.masked_summary() is None
    events = [json.loads(r.getMessage()) for r in caplog.records]
    assert [(e["request_id"], e["action"], e["rail"]) for e in events] == [
        ("s1", "masked", "personal_data"), ("s2", "blocked", "secrets"),
    ]
    assert events[0]["findings"] == {"personal_data:email": 1, "personal_data:phone": 1}
