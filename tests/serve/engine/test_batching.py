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


async def wait_for(condition, timeout_s: float = 60.0) -> None:
    """Waits for engine state (never a fixed sleep); the timeout only bounds a broken engine."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


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
    stream = engine.generate(request(ids, max_tokens=40))
    first_text = (await anext(stream)).text  # the first sequence is running: the second joins it
    second = await run(engine, request(ids, max_tokens=10))
    async for output in stream:
        first_text += output.text
    assert first_text.startswith(second[0])


async def test_cancelling_frees_the_slot(engine, tiny_tokenizer):
    before = engine.stats().finished.get("cancelled", 0)
    stream = engine.generate(request(prompt(tiny_tokenizer, "cancel me"), max_tokens=200))
    await anext(stream)
    await stream.aclose()
    await wait_for(lambda: engine.stats().running == 0)
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


def unstarted_engine(model, tokenizer) -> BatchingEngine:
    """An engine whose thread starts only after the test queued its requests, so that they share
    the first prefill and every decode step (the thread takes everything waiting at once)."""
    return BatchingEngine(model, tokenizer, max_batch_size=4, max_model_len=256)


def submit(engine: BatchingEngine, req: EngineRequest):
    """Submits ``req``; returns its handle and a future of (text, tokens, finish reason)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future = loop.create_future()
    parts: list = ["", 0]

    def sink(output):
        parts[0] += output.text
        parts[1] += output.num_tokens
        if output.finish_reason is not None:
            loop.call_soon_threadsafe(done.set_result, (parts[0], parts[1], output.finish_reason))

    return engine.submit(req, sink), done


@pytest.mark.parametrize("sampling", [
    {"temperature": 1e-45}, {"temperature": 1.0, "top_p": 1e-46}, {"temperature": 1e-45, "top_p": 1e-46},
    {"temperature": float("nan")},
])
async def test_degenerate_sampling_is_greedy_and_never_fails_the_batch(tiny_model, tiny_tokenizer, sampling):
    # Before: softmax(logits / 1e-45) was NaN, torch.multinomial raised and every sequence of the
    # batch ended with an error.
    engine = unstarted_engine(tiny_model, tiny_tokenizer)
    ids = prompt(tiny_tokenizer, "degenerate sampling")
    _, hostile = submit(engine, request(ids, max_tokens=12, seed=3, **sampling))
    _, normal = submit(engine, request(prompt(tiny_tokenizer, "a normal neighbour"), max_tokens=12))
    engine.start()
    try:
        reference = tiny_tokenizer.decode(greedy_reference(tiny_model, ids, 12), skip_special_tokens=True)
        assert await hostile == (reference, 12, "length")
        assert (await normal)[1:] == (12, "length")
    finally:
        engine.stop()


async def test_a_prompt_the_model_cannot_take_fails_alone(tiny_model, tiny_tokenizer):
    engine = unstarted_engine(tiny_model, tiny_tokenizer)
    normal_ids = prompt(tiny_tokenizer, "the normal one")
    poisoned = prompt(tiny_tokenizer, "poisoned")[:-1] + (tiny_model.config.vocab_size + 7,)
    _, bad = submit(engine, request(poisoned, max_tokens=8))
    _, good = submit(engine, request(normal_ids, max_tokens=16))
    engine.start()
    try:
        assert await bad == ("", 0, "error")
        reference = tiny_tokenizer.decode(greedy_reference(tiny_model, normal_ids, 16), skip_special_tokens=True)
        assert await good == (reference, 16, "length")
    finally:
        engine.stop()


class _PoisonedDetokenizer:
    """Fails on its third token, in the middle of decoding beside other sequences."""

    def __init__(self) -> None:
        self.calls = 0

    def push(self, token: int) -> str:
        self.calls += 1
        if self.calls == 3:
            raise RuntimeError("poisoned sequence")
        return "x"


async def test_a_failing_sequence_mid_decode_fails_only_itself(tiny_model, tiny_tokenizer):
    engine = unstarted_engine(tiny_model, tiny_tokenizer)
    normal_ids = prompt(tiny_tokenizer, "keeps going")
    handle, bad = submit(engine, request(prompt(tiny_tokenizer, "breaks"), max_tokens=16))
    handle._sequence.detokenizer = _PoisonedDetokenizer()
    _, good = submit(engine, request(normal_ids, max_tokens=16))
    engine.start()
    try:
        assert await bad == ("xx", 2, "error")
        reference = tiny_tokenizer.decode(greedy_reference(tiny_model, normal_ids, 16), skip_special_tokens=True)
        assert await good == (reference, 16, "length")
        assert engine.stats().finished == {"error": 1, "length": 1}
    finally:
        engine.stop()


async def test_a_sampling_failure_fails_only_its_sequence(tiny_model, tiny_tokenizer, monkeypatch):
    from serve.engine import batching

    real = batching.sample_next_tokens

    def poisoned(logits, params, generators):
        # Deterministic fault: any batch holding the poisoned sequence fails to sample.
        if any(p.stop == ("POISON",) for p in params):
            raise RuntimeError("probability tensor contains either inf, nan or element < 0")
        return real(logits, params, generators)

    monkeypatch.setattr(batching, "sample_next_tokens", poisoned)
    engine = unstarted_engine(tiny_model, tiny_tokenizer)
    normal_ids = prompt(tiny_tokenizer, "unaffected")
    _, bad = submit(engine, request(prompt(tiny_tokenizer, "sampling fails"), max_tokens=8, stop=("POISON",)))
    _, good = submit(engine, request(normal_ids, max_tokens=16))
    engine.start()
    try:
        assert await bad == ("", 0, "error")
        reference = tiny_tokenizer.decode(greedy_reference(tiny_model, normal_ids, 16), skip_special_tokens=True)
        assert await good == (reference, 16, "length")
    finally:
        engine.stop()


def test_huge_seeds_make_a_generator():
    from serve.engine.sampling import make_generator

    for seed in (2**64 + 5, -(2**63), 2**63 - 1 + 7):
        assert make_generator(seed, torch.device("cpu")) is not None
