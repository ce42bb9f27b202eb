"""The OpenAI-compatible API end to end: official client -> HTTP -> Ray Serve -> tiny Mistral."""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest

USER = [{"role": "user", "content": "Write a short note about serving language models."}]


def chat(client, served, **kwargs):
    return client.chat.completions.create(model=served.model, messages=kwargs.pop("messages", USER), **kwargs)


def test_models_lists_the_served_model(client, served):
    assert [m.id for m in client.models.list().data] == [served.model]


def test_chat_completion_has_text_usage_and_length_finish(client, served):
    response = chat(client, served, max_tokens=12, temperature=0)
    choice = response.choices[0]
    assert response.object == "chat.completion"
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason == "length"
    assert response.usage.completion_tokens == 12
    assert response.usage.prompt_tokens > 5
    assert response.usage.total_tokens == response.usage.prompt_tokens + 12


def test_streamed_chat_equals_non_streamed_and_reports_usage(client, served):
    whole = chat(client, served, max_tokens=20, temperature=0)
    stream = chat(client, served, max_tokens=20, temperature=0, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["length"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 20
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens


def test_stream_bytes_follow_openai_sse(served, auth):
    body = {"model": served.model, "messages": USER, "max_tokens": 4, "stream": True}
    with httpx.stream("POST", f"{served.base_url}/chat/completions", json=body, headers=auth, timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = b"".join(response.iter_bytes()).decode()
    events = raw.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    payloads = [json.loads(e.removeprefix("data: ")) for e in events[:-2]]
    assert all(e.startswith("data: ") for e in events[:-2])
    assert all(p["object"] == "chat.completion.chunk" and "usage" not in p for p in payloads)
    assert len({p["id"] for p in payloads}) == 1
    assert payloads[-1]["choices"][0]["delta"] == {} and payloads[-1]["choices"][0]["finish_reason"] == "length"


def test_text_completion_streamed_and_not(client, served):
    whole = client.completions.create(model=served.model, prompt="The cache", max_tokens=10, temperature=0)
    assert whole.object == "text_completion" and whole.usage.completion_tokens == 10
    stream = client.completions.create(
        model=served.model, prompt="The cache", max_tokens=10, temperature=0, stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text
    assert chunks[-1].usage.completion_tokens == 10


def test_stop_string_cuts_output_and_finishes_with_stop(client, served):
    reference = chat(client, served, max_tokens=40, temperature=0).choices[0].message.content
    stop = reference[len(reference) // 2 : len(reference) // 2 + 3]
    expected = reference[: reference.index(stop)]
    cut = chat(client, served, max_tokens=40, temperature=0, stop=[stop])
    assert cut.choices[0].message.content == expected
    assert cut.choices[0].finish_reason == "stop"
    assert cut.usage.completion_tokens < 40
    streamed = chat(client, served, max_tokens=40, temperature=0, stop=stop, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == expected


def test_seed_makes_sampling_reproducible(client, served):
    first = chat(client, served, max_tokens=24, temperature=1.0, seed=1234).choices[0].message.content
    again = chat(client, served, max_tokens=24, temperature=1.0, seed=1234).choices[0].message.content
    other = chat(client, served, max_tokens=24, temperature=1.0, seed=4321).choices[0].message.content
    assert first == again
    assert first != other


def test_n_choices_are_distinct_and_indexed(client, served):
    response = chat(client, served, max_tokens=8, temperature=1.0, seed=7, n=3)
    assert [c.index for c in response.choices] == [0, 1, 2]
    assert len({c.message.content for c in response.choices}) == 3
    assert response.usage.completion_tokens == 24
    stream = chat(client, served, max_tokens=8, temperature=1.0, seed=7, n=3, stream=True)
    texts = {0: "", 1: "", 2: ""}
    for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
    assert [texts[i] for i in range(3)] == [c.message.content for c in response.choices]


async def test_concurrent_requests_all_succeed_and_match_sequential(async_client, client, served):
    prompts = [f"Request number {i}: explain batching." for i in range(16)]
    reference = {p: chat(client, served, messages=[{"role": "user", "content": p}], max_tokens=16, temperature=0)
                 .choices[0].message.content for p in prompts[:3]}
    responses = await asyncio.gather(*[
        async_client.chat.completions.create(
            model=served.model, messages=[{"role": "user", "content": p}], max_tokens=16, temperature=0
        )
        for p in prompts
    ])
    assert all(r.usage.completion_tokens == 16 for r in responses)
    for prompt, response in zip(prompts[:3], responses[:3]):
        assert response.choices[0].message.content == reference[prompt]


def test_unknown_fields_are_ignored(client, served):
    response = chat(client, served, max_tokens=3, temperature=0, extra_body={"some_future_option": {"x": 1}})
    assert response.usage.completion_tokens == 3


def test_unknown_model_is_404_model_not_found(client, served):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-17-secret-marker", messages=USER, max_tokens=3)
    assert caught.value.code == "model_not_found"
    assert "secret-marker" not in caught.value.response.text


def test_context_too_long_is_400_context_length_exceeded(client, served):
    with pytest.raises(openai.BadRequestError) as caught:
        chat(client, served, max_tokens=4000)
    assert caught.value.code == "context_length_exceeded"
    long_prompt = [{"role": "user", "content": "token " * 3000}]
    with pytest.raises(openai.BadRequestError) as caught:
        chat(client, served, messages=long_prompt)
    assert caught.value.code == "context_length_exceeded"
    assert caught.value.body["param"] == "messages"


@pytest.mark.parametrize(
    ("field", "value"),
    [("temperature", 2.5), ("top_p", 0), ("max_tokens", 0), ("n", 0), ("stop", ["a", "b", "c", "d", "e"]),
     ("messages", []), ("presence_penalty", 2.5), ("logprobs", True)],
)
def test_invalid_parameter_values_are_400_naming_the_param(served, auth, field, value):
    body = {"model": served.model, "messages": USER, "max_tokens": 3, field: value}
    response = httpx.post(f"{served.base_url}/chat/completions", json=body, headers=auth, timeout=60)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == field
    assert set(error) == {"message", "type", "param", "code"}


def test_bad_role_order_is_400_without_echoing_input(served, auth):
    marker = "ZZ-private-text-ZZ"
    body = {"model": served.model, "messages": [{"role": "assistant", "content": marker}]}
    response = httpx.post(f"{served.base_url}/chat/completions", json=body, headers=auth, timeout=60)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages"
    assert marker not in response.text
    body = {"model": served.model, "messages": [{"role": "wizard", "content": marker}]}
    response = httpx.post(f"{served.base_url}/chat/completions", json=body, headers=auth, timeout=60)
    assert response.status_code == 400 and marker not in response.text


def test_bad_json_is_400_invalid_request(served, auth):
    response = httpx.post(
        f"{served.base_url}/chat/completions", content=b'{"model": ',
        headers={"content-type": "application/json", **auth},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def test_unknown_route_and_method_use_the_error_envelope(served, auth):
    assert httpx.get(f"{served.base_url}/nothing-here").json()["error"]["type"] == "invalid_request_error"
    response = httpx.get(f"{served.base_url}/chat/completions", headers=auth)
    assert response.status_code == 405 and "error" in response.json()


def test_health_readiness_and_openapi(served):
    assert httpx.get(f"{served.root_url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{served.root_url}/readyz").json() == {"status": "ready"}
    spec = httpx.get(f"{served.root_url}/openapi.json").json()
    assert {"/v1/chat/completions", "/v1/completions", "/v1/models"} <= set(spec["paths"])


async def test_client_disconnect_frees_the_generation_slot(async_client, served):
    from ray import serve

    engine = serve.get_deployment_handle("Engine", app_name=served.app_name)
    before = (await engine.stats.remote())["finished"].get("cancelled", 0)
    stream = await async_client.chat.completions.create(
        model=served.model, messages=USER, max_tokens=1500, temperature=0, stream=True
    )
    received = 0
    async for _chunk in stream:
        received += 1
        if received == 3:
            break
    await stream.close()
    for _ in range(100):
        stats = await engine.stats.remote()
        if stats["finished"].get("cancelled", 0) > before and stats["running"] == 0:
            break
        await asyncio.sleep(0.1)
    assert stats["finished"].get("cancelled", 0) == before + 1
    assert stats["running"] == 0
