"""The gateway's moderation stage over an in-process Moderator (the offline packaged policies):
the policy resolved once and failing closed, verdicts turned into API errors, masked texts and
``/v1/moderations`` responses, and output rails on streams and whole answers."""

from __future__ import annotations

import pytest

from guardrails.client import ModerationUnavailableError
from serve.engine.types import EngineOutput
from serve.errors import ContentFilterError, InternalError, ServiceUnavailableError
from serve.gateway.moderation_stage import ModerationStage, OutputCheck
from serve.tenancy.keys import Principal, Team

SECRET = "AKIAIOSFODNN7EXAMPLE"


def caller(policy: str | None = None) -> Principal:
    return Principal("k1", Team("team-a", policy=policy))


@pytest.fixture
def stage(offline):
    return ModerationStage(offline, offline.policies.infos(), "default")


class Unreachable:
    """A moderation client whose deployment cannot be reached."""

    async def check_inputs(self, *args, **kwargs):
        raise ModerationUnavailableError("down")

    async def check_output(self, *args, **kwargs):
        raise ModerationUnavailableError("down")


def test_the_policy_is_the_teams_or_the_default(stage):
    assert stage.policy(caller()).name == "default"
    assert stage.policy(caller("permissive")).name == "permissive"


def test_a_team_naming_a_missing_policy_fails_closed(stage):
    with pytest.raises(InternalError) as raised:
        stage.policy(caller("no-such-policy"))
    assert raised.value.status == 500 and raised.value.code == "moderation_policy_not_found"
    assert "no-such-policy" not in raised.value.message


async def test_inputs_come_back_masked_or_refused(stage):
    policy = stage.policy(caller())
    texts = await stage.check_inputs(caller(), policy, ["hello", "mail a.b@gmail.com"], "r1", "messages")
    assert texts == ["hello", "mail [EMAIL]"]
    with pytest.raises(ContentFilterError) as raised:
        await stage.check_inputs(caller(), policy, ["hi", f"key {SECRET}"], "r2", "messages")
    assert raised.value.status == 400 and raised.value.param == "messages" and "secrets" in raised.value.message


async def test_unreachable_moderation_is_a_503(offline):
    stage = ModerationStage(Unreachable(), offline.policies.infos(), "default")
    with pytest.raises(ServiceUnavailableError) as raised:
        await stage.check_inputs(caller(), stage.policy(caller()), ["hello"], "r", "prompt")
    assert raised.value.code == "moderation_unavailable" and raised.value.headers == {"Retry-After": "1"}
    with pytest.raises(ServiceUnavailableError):
        await stage.moderations(caller(), ["hello"], "modr-1")


async def test_moderations_are_built_from_verdicts(stage):
    response = await stage.moderations(caller("permissive"), ["hello", SECRET], "modr-7")
    assert response.id == "modr-7" and response.model.startswith("guardrails/permissive@")
    assert [r.flagged for r in response.results] == [False, True]
    assert response.results[1].categories["secrets"]


async def outputs(*pieces: str, choice: int = 0):
    for i, piece in enumerate(pieces):
        yield choice, EngineOutput(text=piece, num_tokens=1, finish_reason="stop" if i == len(pieces) - 1 else None)


def check_for(stage, choices: int = 1) -> OutputCheck:
    return OutputCheck(caller(), stage.policy(caller()), "r", "hi", choices)


async def test_a_stream_is_cut_before_a_blocked_window_and_the_rest_passes_whole(stage):
    check = check_for(stage)
    clean = "All good here. " * 20
    got = [o async for _, o in stage.moderate_stream(outputs(clean, f"then {SECRET} leaks"), check)]
    text = "".join(o.text for o in got)
    assert SECRET not in text and got[-1].finish_reason == "content_filter" and check.stopped == {0}
    passed = [o async for _, o in stage.moderate_stream(outputs("Hello", " there."), check_for(stage))]
    assert "".join(o.text for o in passed) == "Hello there." and passed[-1].finish_reason == "stop"


async def test_a_whole_answer_is_masked_or_returned_empty_when_blocked(stage):
    masked = [o async for _, o in stage.moderate_whole(outputs("write to a.b@gmail.com"), check_for(stage))]
    assert masked[0].text == "write to [EMAIL]" and masked[0].finish_reason == "stop"
    check = check_for(stage)
    clean = "Fine text. " * 30
    cut = [o async for _, o in stage.moderate_whole(outputs(clean, SECRET), check)]
    # Its first windows would pass, but the whole answer failed: nothing unchecked is returned.
    assert cut[0].text == "" and cut[0].finish_reason == "content_filter"
    assert cut[0].num_tokens == 2 and check.stopped == {0}
