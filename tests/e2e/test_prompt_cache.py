"""The prompt cache end to end: real Serve app, real Redis, official client."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import openai
import pytest


def messages(text: str | None = None):
    return [{"role": "user", "content": text or f"cache me {uuid.uuid4().hex[:8]}"}]


@pytest.fixture(scope="module")
def cache_client(served):
    """A client that does use the cache (no Cache-Control header)."""
    return openai.OpenAI(base_url=served.base_url, api_key=served.api_key, max_retries=0, timeout=120)


async def engine_started(served) -> int:
    from ray import serve

    return (await serve.get_deployment_handle("Engine", app_name=served.app_name).stats.remote())["started"]


def create(client, **kwargs):
    return client.chat.completions.with_raw_response.create(model=kwargs.pop("model"), **kwargs)


async def test_repeat_is_a_hit_served_without_the_engine(served, cache_client):
    prompt = messages()
    first = create(cache_client, model=served.model, messages=prompt, max_tokens=12, temperature=0)
    before = await engine_started(served)
    second = create(cache_client, model=served.model, messages=prompt, max_tokens=12, temperature=0)
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
    assert await engine_started(served) == before
    one, two = first.parse(), second.parse()
    assert one.choices[0].message.content == two.choices[0].message.content
    assert one.usage == two.usage and one.id != two.id


def test_what_is_not_cached(served, cache_client):
    prompt = messages()
    sampled = create(cache_client, model=served.model, messages=prompt, max_tokens=4, temperature=0.8)
    assert sampled.headers["x-cache"] == "bypass"  # random sampling without a seed
    seeded = [create(cache_client, model=served.model, messages=prompt, max_tokens=4, temperature=0.8, seed=5)
              for _ in range(2)]
    assert [r.headers["x-cache"] for r in seeded] == ["miss", "hit"]
    opted_out = create(cache_client, model=served.model, messages=prompt, max_tokens=4, temperature=0.8, seed=5,
                       extra_headers={"Cache-Control": "no-cache"})
    assert opted_out.headers["x-cache"] == "bypass"
    changed = create(cache_client, model=served.model, messages=prompt, max_tokens=5, temperature=0.8, seed=5)
    assert changed.headers["x-cache"] == "miss"  # another sampling parameter, another entry


def test_two_teams_never_share_an_entry(served, cache_client, make_key):
    prompt = messages()
    create(cache_client, model=served.model, messages=prompt, max_tokens=6, temperature=0)
    assert create(cache_client, model=served.model, messages=prompt, max_tokens=6, temperature=0).headers["x-cache"] == "hit"
    other = openai.OpenAI(base_url=served.base_url, api_key=make_key("other-team"), max_retries=0, timeout=120)
    assert create(other, model=served.model, messages=prompt, max_tokens=6, temperature=0).headers["x-cache"] == "miss"


async def test_identical_concurrent_misses_generate_once(served):
    client = openai.AsyncOpenAI(base_url=served.base_url, api_key=served.api_key, max_retries=0, timeout=120)
    prompt = messages()
    before = await engine_started(served)
    responses = await asyncio.gather(*[
        client.chat.completions.with_raw_response.create(model=served.model, messages=prompt, max_tokens=40, temperature=0)
        for _ in range(6)
    ])
    assert await engine_started(served) == before + 1
    assert sorted(r.headers["x-cache"] for r in responses) == ["hit"] * 5 + ["miss"]
    assert len({r.parse().choices[0].message.content for r in responses}) == 1


def sse_events(raw: str) -> list[dict]:
    events = raw.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""], "a stream ends with [DONE]"
    assert all(e.startswith("data: ") for e in events[:-2])
    return [json.loads(e.removeprefix("data: ")) for e in events[:-2]]


def test_a_streamed_hit_is_a_valid_openai_stream(served):
    headers = {"Authorization": f"Bearer {served.api_key}"}
    body = {"model": served.model, "messages": messages(), "max_tokens": 10, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    replies = []
    for _ in range(2):
        with httpx.stream("POST", f"{served.base_url}/chat/completions", json=body, headers=headers, timeout=60) as r:
            replies.append((r.headers["x-cache"], r.headers["content-type"], "".join(r.iter_text())))
    (miss, _, fresh), (hit, content_type, replayed) = replies
    assert (miss, hit) == ("miss", "hit") and content_type.startswith("text/event-stream")
    fresh_events, hit_events = sse_events(fresh), sse_events(replayed)
    for events in (fresh_events, hit_events):
        assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        assert all(e["object"] == "chat.completion.chunk" and "usage" in e for e in events)
        assert events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens"] == 10
        assert [c["finish_reason"] for e in events for c in e["choices"] if c["finish_reason"]] == ["length"]

    def text(events):
        return "".join(c["delta"].get("content") or "" for e in events for c in e["choices"])

    assert text(hit_events) == text(fresh_events)
    assert hit_events[-1]["usage"] == fresh_events[-1]["usage"]
    # And the official client reads it.
    client = openai.OpenAI(base_url=served.base_url, api_key=served.api_key, max_retries=0)
    chunks = list(client.chat.completions.create(**body))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text(fresh_events)
