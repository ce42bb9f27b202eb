"""The engine's KV memory on the real tiny Mistral: slots, chunked prefill, prefix cache, rolling buffer.

Every output is compared token for token with transformers' own ``generate`` on the same model.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
import torch

from serve.engine.batching import BatchingEngine
from serve.engine.types import EngineRequest, SamplingParams


def prompt(tokenizer, text: str, system: str | None = None) -> tuple[int, ...]:
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
    return tuple(tokenizer.apply_chat_template(messages, return_dict=True)["input_ids"])


def reference(model, tokenizer, ids, tokens: int) -> list[int]:
    """transformers' own greedy continuation (token ids: text may end inside a character)."""
    out = model.generate(torch.tensor([ids]), max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)
    return out[0, len(ids):].tolist()


def greedy(ids, max_tokens: int) -> EngineRequest:
    return EngineRequest("r", ids, SamplingParams(max_tokens=max_tokens, temperature=0, ignore_eos=True))


async def run(engine, request) -> tuple[list[int], int, str]:
    tokens, count, reason = [], 0, None
    async for output in engine.generate(request):
        tokens, count, reason = tokens + output.token_ids, count + output.num_tokens, output.finish_reason
    return tokens, count, reason


def cache_pointers(engine: BatchingEngine) -> list[int]:
    cache = engine.runner.cache
    return [t.data_ptr() for t in cache.keys + cache.values]


def windowed_model(model, window: int):
    """A copy of the tiny model whose sliding window is ``window`` tokens."""
    config = type(model.config).from_dict(model.config.to_dict())
    config.sliding_window = window
    copy = type(model)(config).eval()
    copy.load_state_dict(model.state_dict())
    return copy


async def test_sequences_join_and_leave_without_touching_the_cache(tiny_model, tiny_tokenizer):
    engine = BatchingEngine(tiny_model, tiny_tokenizer, max_batch_size=3, max_model_len=256).start()
    try:
        before = cache_pointers(engine)
        texts = ["first", "a second, longer prompt about slots", "third", "fourth one", "fifth and last"]
        prompts = [prompt(tiny_tokenizer, t) for t in texts]
        lengths = [5, 30, 12, 20, 8]  # different lengths: sequences leave at different steps
        results = await asyncio.gather(*[run(engine, greedy(p, n)) for p, n in zip(prompts, lengths)])
        assert cache_pointers(engine) == before  # same memory: nothing reallocated or concatenated
        for ids, n, (text, count, _) in zip(prompts, lengths, results):
            assert (text, count) == (reference(tiny_model, tiny_tokenizer, ids, n), n)
        assert engine.stats().kv_cache_used_bytes == 0  # every slot given back
    finally:
        engine.stop()


async def test_a_long_prompt_is_prefilled_in_chunks_between_decode_steps(tiny_model, tiny_tokenizer):
    engine = BatchingEngine(tiny_model, tiny_tokenizer, max_batch_size=2, max_model_len=512,
                            max_prefill_tokens=16).start()
    try:
        events: list[str] = []
        first_token = threading.Event()

        def stream_sink(output):
            events.append("stream")
            first_token.set()

        short = prompt(tiny_tokenizer, "a running stream")
        engine.submit(greedy(short, 400), stream_sink)  # still running when the long prompt is done
        await asyncio.to_thread(first_token.wait, 60)
        long_ids = prompt(tiny_tokenizer, "a long prompt " * 30)
        long_done: asyncio.Future = asyncio.get_running_loop().create_future()
        loop = asyncio.get_running_loop()

        def long_sink(output):
            events.append("long")
            if output.finish_reason is not None:
                loop.call_soon_threadsafe(long_done.set_result, None)

        text_parts: list[int] = []
        engine.submit(greedy(long_ids, 10), lambda out: (text_parts.extend(out.token_ids), long_sink(out)))
        await long_done
        chunks = -(-len(long_ids) // 16)
        # The running stream got a token after every chunk but the last: it never waited for the
        # whole prompt.
        assert events[events.index("long") - (chunks - 1) : events.index("long")] == ["stream"] * (chunks - 1)
        assert text_parts == reference(tiny_model, tiny_tokenizer, long_ids, 10)
    finally:
        engine.stop()


async def test_shared_prompt_prefixes_are_reused_with_identical_outputs(tiny_model, tiny_tokenizer):
    system = "You are the support assistant of team A. Answer briefly and politely. " * 3
    prompts = [prompt(tiny_tokenizer, q, system) for q in ("first question", "second question", "third")]
    cached = BatchingEngine(tiny_model, tiny_tokenizer, max_batch_size=2, max_model_len=256).start()
    try:
        first = await run(cached, greedy(prompts[0], 12))
        assert cached.stats().prefix_cache_hit_tokens == 0
        rest = [await run(cached, greedy(p, 12)) for p in prompts[1:]]
        hits = cached.stats().prefix_cache_hit_tokens
    finally:
        cached.stop()
    common = next(i for i, (a, b) in enumerate(zip(prompts[0], prompts[1])) if a != b)
    assert hits >= 2 * (common // 16) * 16 > 0  # both later requests reused the system prompt's blocks
    for ids, result in zip(prompts, [first, *rest]):
        assert result == (reference(tiny_model, tiny_tokenizer, ids, 12), 12, "length")


async def test_rolling_buffer_keeps_memory_flat_and_matches_generate(tiny_model, tiny_tokenizer):
    window = 16
    model = windowed_model(tiny_model, window)
    engine = BatchingEngine(model, tiny_tokenizer, max_batch_size=2, max_model_len=256,
                            max_prefill_tokens=8).start()
    try:
        cache = engine.runner.cache
        assert cache.keys[0].shape[2] == window  # the slot is the window, not the context
        assert engine.stats().kv_cache_capacity_bytes == 2 * window * cache.bytes_per_token
        used: list[int] = []
        ids = prompt(tiny_tokenizer, "a prompt longer than the window " * 5)
        assert len(ids) > 2 * window
        done = asyncio.get_running_loop().create_future()
        loop = asyncio.get_running_loop()
        parts: list[int] = []

        def sink(output):
            parts.extend(output.token_ids)
            used.append(engine.stats().kv_cache_used_bytes)
            if output.finish_reason is not None:
                loop.call_soon_threadsafe(done.set_result, output.finish_reason)

        engine.submit(greedy(ids, 80), sink)
        assert await done == "length"
        # len(ids) + 80 tokens went through a sequence whose memory never exceeded the window.
        assert max(used) == window * cache.bytes_per_token
        assert parts == reference(model, tiny_tokenizer, ids, 80)
    finally:
        engine.stop()


@pytest.mark.parametrize("window", [5, 16])
async def test_rolling_buffer_matches_generate_for_many_sequences(tiny_model, tiny_tokenizer, window):
    model = windowed_model(tiny_model, window)
    engine = BatchingEngine(model, tiny_tokenizer, max_batch_size=3, max_model_len=128,
                            max_prefill_tokens=12).start()
    try:
        prompts = [prompt(tiny_tokenizer, t) for t in ("x", "a medium prompt here", "ab " * 12, "slots")]
        results = await asyncio.gather(*[run(engine, greedy(p, 24)) for p in prompts])
        for ids, (text, _, _) in zip(prompts, results):
            assert text == reference(model, tiny_tokenizer, ids, 24)
    finally:
        engine.stop()


async def test_static_shapes_decode_gives_the_same_tokens(tiny_model, tiny_tokenizer):
    engine = BatchingEngine(tiny_model, tiny_tokenizer, max_batch_size=4, max_model_len=128,
                            static_shapes=True).start()
    try:
        prompts = [prompt(tiny_tokenizer, t) for t in ("static", "shapes for graphs")]
        results = await asyncio.gather(*[run(engine, greedy(p, 16)) for p in prompts])
        for ids, (text, _, _) in zip(prompts, results):
            assert text == reference(tiny_model, tiny_tokenizer, ids, 16)
    finally:
        engine.stop()
