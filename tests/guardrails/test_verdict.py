"""Verdicts and findings as values."""

from __future__ import annotations

import pickle

from guardrails.verdict import Finding, Verdict, first_blocked


def verdict(action="allowed", rail=None, findings=(), scores=None, failed=False) -> Verdict:
    return Verdict(action, rail, "t", "p", "v1", "input", findings=tuple(findings), scores=scores or {}, failed=failed)


def test_actions_and_flags():
    assert verdict().allowed and not verdict().blocked and not verdict().flagged
    masked = verdict("masked", "pii", [Finding("pii", "pii", "email", "mask", 0, 3, "[EMAIL]")])
    assert masked.allowed and masked.flagged
    assert verdict("blocked", "secrets").blocked and not verdict("blocked", "secrets").allowed


def test_categories_name_every_score_and_flag_what_was_found():
    finding = Finding("terms", "illicit/violent", "weapon", "block")
    categories = verdict("blocked", "terms", [finding], {"illicit/violent": 1.0, "hate": 0.0}).categories()
    assert categories == {"hate": False, "illicit/violent": True}


def test_a_block_without_findings_flags_its_rail_and_a_failed_one_flags_moderation_error():
    assert verdict("blocked", "self_check_input").categories() == {"self_check_input": True}
    assert verdict("blocked", "self_check_input", failed=True).categories() == {"moderation-error": True}


def test_spans_and_pickling():
    assert Finding("r", "c", "k", "mask", 2, 5).has_span and not Finding("r", "c", "k", "mask").has_span
    v = verdict("masked", "pii", [Finding("pii", "pii", "email", "mask", 0, 3)])
    assert pickle.loads(pickle.dumps(v)) == v  # Ray pickles verdicts between deployments


def test_first_blocked():
    ok, blocked = verdict(), verdict("blocked", "secrets")
    assert first_blocked([ok, blocked, verdict("blocked", "pii")]) is blocked and first_blocked([ok]) is None
