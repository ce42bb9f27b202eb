"""The Ray handle client of the moderation layer: calls pass through, failures become
ModerationUnavailableError (never a verdict), and it satisfies the one ModerationClient Protocol."""

from __future__ import annotations

import pytest

from guardrails.client import ModerationClient, ModerationUnavailableError, RayModerationClient
from guardrails.moderator import Moderator
from guardrails.verdict import Verdict

OK = Verdict("allowed", None, "hi", "default", "v1", "input")


class FakeMethod:
    def __init__(self, owner, name):
        self.owner, self.name = owner, name

    async def remote(self, *args):
        self.owner.calls.append((self.name, args))
        if self.owner.error is not None:
            raise self.owner.error
        return [OK] if self.name == "check_inputs" else OK


class FakeHandle:
    """A deployment handle: ``handle.method.remote(*args)`` awaits the replica's answer."""

    def __init__(self, error=None):
        self.calls, self.error = [], error

    def __getattr__(self, name):
        return FakeMethod(self, name)


async def test_calls_reach_the_deployment_with_the_resolved_policy():
    handle = FakeHandle()
    client = RayModerationClient(handle)
    assert await client.check_inputs(("hi",), "strict", request_id="r", team="t") == [OK]
    assert await client.check_output("out", "strict", request_id="r", team="t", context="hi", window=True) == OK
    assert handle.calls == [("check_inputs", (["hi"], "strict", "r", "t")),
                            ("check_output", ("out", "strict", "r", "t", "hi", True))]


async def test_any_failure_of_the_call_is_moderation_unavailable():
    client = RayModerationClient(FakeHandle(error=RuntimeError("replica died")))
    with pytest.raises(ModerationUnavailableError):
        await client.check_inputs(["hi"])
    with pytest.raises(ModerationUnavailableError):
        await client.check_output("x")


def test_both_implementations_have_every_method_of_the_protocol():
    methods = {n for n in vars(ModerationClient) if not n.startswith("_")}
    assert methods == {"check_inputs", "check_output"}
    for implementation in (RayModerationClient, Moderator):
        assert methods <= set(dir(implementation)), implementation
