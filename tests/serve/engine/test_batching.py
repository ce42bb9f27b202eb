"""The continuous-batching engine on the real tiny Mistral: correctness of batching itself."""

from __future__ import annotations

import asyncio

import pytest
import torch

from serve.engine.batching import BatchingEngine
from serve.engine.types import EngineRequest, SamplingParams


@pytest.fixture(scope="module")
def engine(tiny_model, tiny_tokenizer):
    engine = BatchingEngine(tiny_model, tiny_tokenizer, max_batch_size=4, max_model_len=256).start()
    yield engine
    engine.stop()


def prompt(tokenizer, text: str) -> tuple[int, ...]:
    return tuple(tokenizer.apply_chat_template([{"role": "user", "content": text}], return_dict=True)["input_ids"])


def greedy_reference(model, ids, tokens: int) -> list[int]:
    out = model.generate(torch.tensor([ids]), max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)
    return out[0, len(ids):].tolist()


async def run(engine, request) -> tuple[str, int, str]:
    text, count, reason = "", 0, None
    async for output in engine.generate(request):
        text, count, reason = text + output.text, count + output.num_tokens, output.finish_reason
    return text, count, reason


def request(ids, max_tokens=24, **sampling) -> EngineRequest:
    sampling.setdefault("temperature", 0)
    return EngineRequest("r", ids, SamplingParams(max_tokens=max_tokens, ignore_eos=True, **sampling))


async def test_batched_greedy_equals_one_at_a_time_generate(engine, tiny_model, tiny_tokenizer):
    # Different prompt lengths force left padding; 6 requests on 4 slots force joins mid-flight.
    texts = ["hi", "a much longer prompt about caches and batching " * 3, "numbers 1 2 3", "é ü 🚀",
             "short", "another prompt of medium length"]
    prompts = [prompt(tiny_tokenizer, t) for t in texts]
    results = await asyncio.gather(*[run(engine, request(p)) for p in prompts])
    for ids, (text, count, reason) in zip(prompts, results):
        assert text == tiny_tokenizer.decode(greedy_reference(tiny_model, ids, 24), skip_special_tokens=True)
        assert (count, reason) == (24, "length")


async def test_staggered_arrivals_join_the_running_batch(engine, tiny_model, tiny_tokenizer):
    ids = prompt(tiny_tokenizer, "staggered")
    first = asyncio.create_task(run(engine, request(ids, max_tokens=40)))
    await asyncio.sleep(0.05)
    second = await run(engine, request(ids, max_tokens=10))
    assert (await first)[0].startswith(second[0])


async def test_cancelling_frees_the_slot(engine, tiny_tokenizer):
    before = engine.stats().finished.get("cancelled", 0)
    stream = engine.generate(request(prompt(tiny_tokenizer, "cancel me"), max_tokens=200))
    await anext(stream)
    await stream.aclose()
    for _ in range(50):
        if engine.stats().running == 0:
            break
        await asyncio.sleep(0.02)
    stats = engine.stats()
    assert stats.running == 0 and stats.finished["cancelled"] == before + 1


async def test_seeded_sampling_does_not_depend_on_the_batch(engine, tiny_tokenizer):
    ids = prompt(tiny_tokenizer, "seeded")
    alone = await run(engine, request(ids, temperature=1.0, seed=99))
    crowd = await asyncio.gather(
        run(engine, request(ids, temperature=1.0, seed=99)),
        *[run(engine, request(prompt(tiny_tokenizer, f"noise {i}"), temperature=1.0)) for i in range(3)],
    )
    assert crowd[0] == alone


async def test_top_p_near_zero_is_greedy(engine, tiny_tokenizer):
    ids = prompt(tiny_tokenizer, "nucleus")
    assert await run(engine, request(ids, temperature=1.0, top_p=1e-6, seed=1)) == await run(engine, request(ids))


async def test_stop_string_ends_generation_early(engine, tiny_tokenizer):
    ids = prompt(tiny_tokenizer, "stop strings")
    text, _, _ = await run(engine, request(ids, max_tokens=30))
    stop = text[10:13]
    cut, count, reason = await run(engine, request(ids, max_tokens=30, stop=(stop,)))
    assert cut == text[: text.index(stop)] and reason == "stop" and count < 30


async def test_eos_finishes_with_stop(tiny_model, tiny_tokenizer):
    # Make the end-of-sequence token the most likely one: greedy decoding must stop on it.
    eos = tiny_tokenizer.eos_token_id
    model = type(tiny_model)(tiny_model.config).eval()
    model.load_state_dict(tiny_model.state_dict())
    eos_bias = torch.zeros(model.config.vocab_size)
    eos_bias[eos] = 1e4
    model.lm_head.register_forward_hook(lambda _m, _i, out: out + eos_bias)
    engine = BatchingEngine(model, tiny_tokenizer, max_batch_size=2, max_model_len=128).start()
    try:
        ids = prompt(tiny_tokenizer, "end")
        text, count, reason = await run(engine, EngineRequest("r", ids, SamplingParams(max_tokens=20, temperature=0)))
        assert (text, count, reason) == ("", 1, "stop")
    finally:
        engine.stop()


def test_requests_beyond_the_context_are_refused(engine, tiny_tokenizer):
    with pytest.raises(ValueError):
        engine.submit(request(prompt(tiny_tokenizer, "x"), max_tokens=300), lambda _: None)
