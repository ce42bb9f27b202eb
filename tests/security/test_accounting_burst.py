"""Usage is billing data: after a burst of 150 concurrent requests with one key, usage equals
exactly what was served; requests refused at capacity (503) are never charged (issue 11)."""

from __future__ import annotations

import asyncio

import httpx

from .conftest import assert_envelope
from .test_hostile_requests import MESSAGES, usage, wait_for


async def test_usage_matches_what_was_served_after_a_burst(stack):
    team = "sec-burst"
    key = stack.key(team, rpm=0, tpm=0)
    body = {"model": stack.model, "messages": MESSAGES, "max_tokens": 2}

    async with httpx.AsyncClient(timeout=200, limits=httpx.Limits(max_connections=200)) as client:
        outcomes = await asyncio.gather(*[
            client.post(f"{stack.base_url}/chat/completions", json=body, headers=stack.auth(key))
            for _ in range(150)
        ], return_exceptions=True)
    failed = [repr(o) for o in outcomes if isinstance(o, BaseException)]
    assert not failed, failed[:3]  # every request answered (a hang shows here, not as a suite timeout)
    responses = [o for o in outcomes if not isinstance(o, BaseException)]
    served = [r.json()["usage"] for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code != 200]
    for response in refused:  # refused at capacity: a 503 envelope, never a 500
        assert_envelope(response, 503)
    assert served
    expected = {"requests": len(served), "prompt_tokens": sum(u["prompt_tokens"] for u in served),
                "completion_tokens": sum(u["completion_tokens"] for u in served)}
    wait_for(lambda: usage(stack, team)["requests"] >= len(served), "usage of every served request")
    row = usage(stack, team)
    assert {k: row[k] for k in expected} == expected, (row, expected, len(refused))
