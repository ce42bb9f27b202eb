"""Audit events: one structured log record per blocked or masked text.

Records go to the ``mistral_serve.audit`` logger as one JSON object per message (and the same
fields in ``extra=`` for structured handlers). They carry who, which policy, which rail and what
was found, never the text itself unless ``include_text`` is set.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter

from .verdict import Verdict

AUDIT_LOGGER = "mistral_serve.audit"


class AuditLog:
    """Writes audit events.

    Args:
        include_text: Also record the checked text (off by default: prompts are not logged).
        logger: Where records go.
    """

    def __init__(self, include_text: bool = False, logger: logging.Logger | None = None) -> None:
        self.include_text = include_text
        self._logger = logger or logging.getLogger(AUDIT_LOGGER)

    def record(self, verdict: Verdict, *, request_id: str | None, team: str | None, text: str) -> None:
        """Logs one event if the verdict blocked or masked the text."""
        if verdict.action == "allowed":
            return
        event = {
            "event": "moderation",
            "ts": round(time.time(), 3),
            "request_id": request_id,
            "team": team,
            "policy": verdict.policy,
            "policy_version": verdict.policy_version,
            "direction": verdict.direction,
            "rail": verdict.rail,
            "action": verdict.action,
            "failed": verdict.failed,
            "findings": dict(Counter(f"{f.rail}:{f.kind}" for f in verdict.findings)),
        }
        if verdict.failed_rails:
            event["failed_rails"] = list(verdict.failed_rails)
        if self.include_text:
            event["text"] = text
        self._logger.info(json.dumps(event, ensure_ascii=False, separators=(",", ":")), extra={"audit": event})
