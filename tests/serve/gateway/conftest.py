"""Fixtures of the gateway's unit tests: an in-process moderator over the offline policies."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("NEMO_GUARDRAILS_NO_USAGE_STATS", "1")


@pytest.fixture(scope="session")
def offline():
    """A Moderator over the packaged offline policies (default and permissive), in-memory metrics."""
    from guardrails.metrics import CountingMetrics
    from guardrails.moderator import Moderator
    from guardrails.policy import PolicySet, load_policies

    policies = load_policies()
    return Moderator(PolicySet({p.name: p for p in policies if not p.needs_llm}, "default"),
                     metrics=CountingMetrics())
