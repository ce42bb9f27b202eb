"""Audit events: one JSON record per blocked or masked text, never the text unless asked."""

from __future__ import annotations

import json
import logging

from guardrails.audit import AUDIT_LOGGER, AuditLog
from guardrails.verdict import Finding, Verdict

MASKED = Verdict("masked", "pii", "mail [EMAIL]", "default", "v1", "input",
                 findings=(Finding("pii", "pii", "email", "mask", 5, 18, "[EMAIL]"),) * 2,
                 failed_rails=("self_check_input",))


def records(caplog) -> list[dict]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == AUDIT_LOGGER]


def test_a_masked_text_is_recorded_without_its_text(caplog):
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    AuditLog().record(MASKED, request_id="r1", team="t", text="mail a.b@gmail.com")
    (event,) = records(caplog)
    assert event["request_id"] == "r1" and event["team"] == "t" and event["action"] == "masked"
    assert event["findings"] == {"pii:email": 2} and event["failed_rails"] == ["self_check_input"]
    assert "text" not in event and "a.b@gmail.com" not in caplog.text


def test_the_text_only_with_include_text_and_nothing_for_allowed(caplog):
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    log = AuditLog(include_text=True)
    log.record(MASKED, request_id="r2", team="t", text="mail a.b@gmail.com")
    log.record(Verdict("allowed", None, "hi", "default", "v1", "input"), request_id="r3", team="t", text="hi")
    (event,) = records(caplog)
    assert event["text"] == "mail a.b@gmail.com" and event["request_id"] == "r2"
