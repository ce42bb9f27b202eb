"""Isolation under attack: every hostile row at once, beside normal streams of another team.

Each normal stream must finish cleanly with exactly the output it has when it runs alone (greedy
decoding is the same in a batch as alone, so any disturbance shows as a different text, a cut
stream or an error), and each hostile request must get its own expected answer.
"""

from __future__ import annotations

import asyncio

import httpx
from openai import AsyncOpenAI

NORMAL_PROMPTS = ["the victim's first question", "a second, somewhat longer question about batching",
                  "third", "a fourth question about caches and queues"]


async def normal_stream(client: AsyncOpenAI, model: str, content: str) -> tuple[str, str | None]:
    stream = await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": content}], max_tokens=32, temperature=0, stream=True,
    )
    text, reason = "", None
    async for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            reason = choice.finish_reason or reason
    return text, reason


def hostile_requests(stack, key: str) -> list[tuple[str, dict, set[int]]]:
    """(name, httpx request arguments, acceptable statuses) for each hostile row."""
    chat = f"{stack.base_url}/chat/completions"
    headers = stack.auth(key)
    message = [{"role": "user", "content": "attack"}]

    def body(**fields) -> dict:
        return {"model": stack.model, "messages": message, "max_tokens": 8, **fields}

    surrogate = ('{"model": "' + stack.model + '", "messages": [{"role": "user", "content": "\\ud800"}]}').encode()
    return [
        ("tiny temperature", {"method": "POST", "url": chat, "json": body(temperature=1e-45), "headers": headers}, {200}),
        ("tiny top_p", {"method": "POST", "url": chat, "json": body(temperature=1, top_p=1e-46), "headers": headers}, {200}),
        ("huge seed", {"method": "POST", "url": chat, "json": body(seed=2**64), "headers": headers}, {400}),
        ("lone surrogate", {"method": "POST", "url": chat, "content": surrogate,
                            "headers": {**headers, "Content-Type": "application/json"}}, {400}),
        ("5,000 prompts", {"method": "POST", "url": f"{stack.base_url}/completions", "headers": headers,
                           "json": {"model": stack.model, "prompt": ["p"] * 5000, "max_tokens": 1}}, {400}),
        ("64 MiB body", {"method": "POST", "url": chat, "content": b" " * (64 * 1024 * 1024),
                         "headers": {"Content-Type": "application/json"}}, {413}),
        ("moderations flood", {"method": "POST", "url": f"{stack.base_url}/moderations", "headers": headers,
                               "json": {"input": ["flood"] * 16}}, {200, 429}),
        ("readyz", {"method": "GET", "url": f"{stack.root_url}/readyz"}, {200}),
        ("docs", {"method": "GET", "url": f"{stack.root_url}/openapi.json"}, {200, 404}),
        ("team name with newline", {"method": "POST", "url": f"{stack.root_url}/admin/keys",
                                    "json": {"team": "acme\n"}, "headers": stack.admin()}, {400}),
        ("unknown policy", {"method": "POST", "url": f"{stack.root_url}/admin/keys",
                            "json": {"team": "sec-attacker", "policy": "nope"}, "headers": stack.admin()}, {400}),
    ]


async def test_hostile_requests_never_disturb_another_teams_streams(stack):
    victim = AsyncOpenAI(base_url=stack.base_url, api_key=stack.key("sec-victim", rpm=0, tpm=0), max_retries=0,
                         timeout=300, default_headers={"Cache-Control": "no-store"})
    attacker = stack.key("sec-attacker", rpm=0, tpm=0)
    references = [await normal_stream(victim, stack.model, p) for p in NORMAL_PROMPTS]  # each alone first
    attacks = hostile_requests(stack, attacker)

    async with httpx.AsyncClient(timeout=300) as http:
        async def attack(arguments: dict) -> int | str:
            try:
                return (await http.request(**arguments)).status_code
            except httpx.HTTPError as error:  # reported with the attack's name below
                return f"{type(error).__name__}: {error}"

        # Three rounds of every attack, interleaved with the victim's streams.
        hostile = [attack(arguments) for _ in range(3) for _, arguments, _ in attacks]
        results = await asyncio.gather(*[normal_stream(victim, stack.model, p) for p in NORMAL_PROMPTS], *hostile)

    assert results[: len(NORMAL_PROMPTS)] == references
    for round_index in range(3):
        for offset, (name, _, expected) in enumerate(attacks):
            status = results[len(NORMAL_PROMPTS) + round_index * len(attacks) + offset]
            assert status in expected, (name, status)
