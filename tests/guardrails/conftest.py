"""Fixtures of the moderation tests: packaged policies and moderators with private metrics."""

from __future__ import annotations

import logging
import os

import pytest

os.environ.setdefault("NEMO_GUARDRAILS_NO_USAGE_STATS", "1")  # LLMRails in these tests sends no telemetry


@pytest.fixture(scope="session")
def policies():
    """The packaged policies (default, permissive, strict), loaded once."""
    from guardrails.policy import load_policies

    return load_policies()


@pytest.fixture
def metrics():
    """Private in-memory moderation metrics."""
    from guardrails.metrics import CountingMetrics

    return CountingMetrics()


@pytest.fixture
def make_moderator(metrics):
    """``make_moderator(policy_set, llms=...)``: a Moderator counting into ``metrics``."""
    from guardrails.audit import AuditLog
    from guardrails.moderator import Moderator

    def make(policy_set, llms=None, audit_logger=None, include_text=False):
        audit = AuditLog(include_text=include_text, logger=audit_logger or logging.getLogger("tests.audit"))
        return Moderator(policy_set, llms=llms, metrics=metrics, audit=audit)

    return make


@pytest.fixture
def offline(policies, make_moderator):
    """A moderator over the offline policies only (default and permissive)."""
    from guardrails.policy import PolicySet

    return make_moderator(PolicySet({p.name: p for p in policies if not p.needs_llm}, "default"))
