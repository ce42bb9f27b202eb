"""ignore_eos, min_tokens, the per-sequence logits-processor hook and log-probabilities, on the tiny Mistral."""

from __future__ import annotations

import asyncio
import math

import pytest
import torch

from serve.engine.batching import BatchingEngine
from serve.engine.types import EngineRequest, SamplingParams


@pytest.fixture(scope="module")
def eos_model(tiny_model, tiny_tokenizer):
    """The tiny model with the end-of-sequence token made the most likely one at every step."""
    model = type(tiny_model)(tiny_model.config).eval()
    model.load_state_dict(tiny_model.state_dict())
    bias = torch.zeros(model.config.vocab_size)
    bias[tiny_tokenizer.eos_token_id] = 1e4
    model.lm_head.register_forward_hook(lambda _m, _i, out: out + bias)
    return model


@pytest.fixture
def engine_for():
    engines = []

    def make(model, tokenizer, **options):
        engines.append(BatchingEngine(model, tokenizer, max_batch_size=4, max_model_len=128, **options).start())
        return engines[-1]

    yield make
    for engine in engines:
        engine.stop()


async def collect(engine, request):
    outputs = [o async for o in engine.generate(request)]
    tokens = [t for o in outputs for t in o.token_ids]
    logprobs = [lp for o in outputs for lp in (o.logprobs or [])]
    return tokens, sum(o.num_tokens for o in outputs), outputs[-1].finish_reason, logprobs


IDS = (1, 3, 300, 301, 302, 4)


async def test_min_tokens_holds_back_eos_then_eos_stops(eos_model, tiny_tokenizer, engine_for):
    engine = engine_for(eos_model, tiny_tokenizer)
    eos = tiny_tokenizer.eos_token_id
    tokens, count, reason, _ = await collect(engine, EngineRequest("r", IDS, SamplingParams(
        max_tokens=20, temperature=0, min_tokens=5)))
    assert (count, reason) == (6, "stop")
    assert eos not in tokens[:5] and tokens[5] == eos


async def test_ignore_eos_generates_exactly_max_tokens(eos_model, tiny_tokenizer, engine_for):
    engine = engine_for(eos_model, tiny_tokenizer)
    tokens, count, reason, _ = await collect(engine, EngineRequest("r", IDS, SamplingParams(
        max_tokens=9, temperature=0, ignore_eos=True)))
    assert (count, reason) == (9, "length") and tokens == [tiny_tokenizer.eos_token_id] * 9


class Force:
    """A logits processor that allows one token only (what a grammar constraint does)."""

    def __init__(self, token: int) -> None:
        self.token = token
        self.seen: list[list[int]] = []

    def __call__(self, output_ids, logits):
        self.seen.append(list(output_ids))
        forced = torch.full_like(logits, float("-inf"))
        forced[self.token] = 0.0
        return forced


class Broken:
    def __call__(self, output_ids, logits):
        raise RuntimeError("constraint bug")


async def test_logits_processors_apply_per_sequence(tiny_model, tiny_tokenizer, engine_for):
    engine = engine_for(tiny_model, tiny_tokenizer)
    force = Force(777)
    greedy = SamplingParams(max_tokens=6, temperature=0, ignore_eos=True)
    constrained, free, broken = await asyncio.gather(
        collect(engine, EngineRequest("c", IDS, SamplingParams(max_tokens=6, temperature=1.0, seed=3,
                                                              ignore_eos=True), (force,))),
        collect(engine, EngineRequest("f", IDS, greedy)),
        collect(engine, EngineRequest("b", IDS, greedy, (Broken(),))),
    )
    assert constrained[0] == [777] * 6
    assert force.seen == [[777] * i for i in range(6)]  # it sees the sequence's own completion so far
    expected = tiny_model.generate(torch.tensor([IDS]), max_new_tokens=6, min_new_tokens=6, do_sample=False)
    assert free[0] == expected[0, len(IDS):].tolist()  # its neighbours are untouched
    assert broken[1:3] == (0, "error")  # a failing processor fails its own sequence only


async def test_logprobs_of_the_chosen_token_and_alternatives(tiny_model, tiny_tokenizer, engine_for):
    engine = engine_for(tiny_model, tiny_tokenizer)
    tokens, _, _, logprobs = await collect(engine, EngineRequest("r", IDS, SamplingParams(
        max_tokens=5, temperature=0, ignore_eos=True, logprobs=3)))
    assert [lp.token_id for lp in logprobs] == tokens
    for lp in logprobs:
        assert len(lp.top) == 3 and lp.top[0] == (lp.token_id, pytest.approx(lp.logprob))
        assert lp.logprob <= 0 and all(a[1] >= b[1] for a, b in zip(lp.top, lp.top[1:]))
    with torch.inference_mode():
        first = torch.log_softmax(tiny_model(torch.tensor([IDS])).logits[0, -1].float(), dim=-1)
    assert math.isclose(logprobs[0].logprob, float(first.max()), abs_tol=1e-4)
    without, _, _, none = await collect(engine, EngineRequest("r", IDS, SamplingParams(max_tokens=5, temperature=0)))
    assert none == [] and without[0] == tokens[0]
