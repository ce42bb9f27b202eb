"""Constrained decoding on the real tiny Mistral (random weights): outputs always match the schema."""

from __future__ import annotations

import asyncio
import json

import jsonschema
import pytest
import torch

from serve.engine.batching import BatchingEngine
from serve.engine.constraints import ConstraintError, JsonConstraint, apply_masks, json_grammar
from serve.engine.types import EngineRequest, SamplingParams

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "role": {"enum": ["admin", "user"]},
    },
    "required": ["name", "age", "role"],
    "additionalProperties": False,
}
CALLS = {  # the shape of a forced tool choice (serve/gateway/prompting.py)
    "type": "array", "minItems": 1, "maxItems": 2,
    "items": {"type": "object", "properties": {
        "name": {"const": "get_weather"},
        "arguments": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 16}},
                      "required": ["city"], "additionalProperties": False}},
        "required": ["name", "arguments"], "additionalProperties": False},
}


@pytest.fixture(scope="module")
def engine(tiny_model, tiny_tokenizer):
    engine = BatchingEngine(tiny_model, tiny_tokenizer, max_batch_size=8, max_model_len=512).start()
    yield engine
    engine.stop()


async def run(engine, schema: dict, seed: int | None, temperature: float = 1.0) -> tuple[str, str | None]:
    sampling = SamplingParams(max_tokens=200, temperature=temperature, seed=seed, json_schema=json.dumps(schema))
    text, reason = "", None
    async for output in engine.generate(EngineRequest(f"c{seed}", (1, 3, 1032, 4), sampling)):
        text, reason = text + output.text, output.finish_reason
    return text, reason


# NOTE: an unbounded schema ({"type": "object"}, json_object mode) is valid whenever the answer
# ends, but random weights rarely close an unbounded string within max_tokens (finish: length).
@pytest.mark.parametrize("schema", [PERSON, CALLS], ids=["object", "tool-calls"])
async def test_every_constrained_output_parses_and_validates(engine, schema):
    # Sampled at temperature 1 from random weights, batched with each other: 8 seeds.
    results = await asyncio.gather(*[run(engine, schema, seed) for seed in range(8)])
    for text, reason in results:
        assert reason == "stop", text
        jsonschema.validate(json.loads(text), schema)


async def test_constrained_and_free_sequences_share_a_batch(engine):
    free = EngineRequest("free", (1, 3, 1032, 4), SamplingParams(max_tokens=8, temperature=0, ignore_eos=True))

    async def plain() -> int:
        return sum([o.num_tokens async for o in engine.generate(free)])

    count, (text, _) = await asyncio.gather(plain(), run(engine, PERSON, seed=None, temperature=0))
    assert count == 8
    jsonschema.validate(json.loads(text), PERSON)


def test_masks_leave_only_allowed_tokens(tiny_tokenizer):
    constraint = JsonConstraint(tiny_tokenizer, json.dumps({"enum": ["yes", "no"]}), 32768)
    logits = apply_masks(torch.zeros(2, 32768), [constraint, None])
    allowed = torch.isfinite(logits[0]).nonzero().flatten().tolist()
    assert allowed and all(tiny_tokenizer.decode([t]).strip() in ('"', '"y', '"n', '"yes', '"no', "") or
                           '"'.startswith(tiny_tokenizer.decode([t]).strip()[:1]) for t in allowed)
    assert torch.isfinite(logits[1]).all()  # an unconstrained row is untouched


def test_bad_schemas_are_refused():
    with pytest.raises(ConstraintError):
        json_grammar("{not json")


def test_penalties_follow_openai_and_never_revive_a_banned_token(tiny_tokenizer):
    from serve.engine.constraints import Penalties

    penalties = Penalties(presence=0.5, frequency=0.25)
    for token in (7, 7, 9):
        penalties.accept(token)
    logits = apply_masks(torch.zeros(1, 16), [None], [((9, 1.0),)], [penalties])
    assert logits[0, 7].item() == -(0.5 + 0.25 * 2) and logits[0, 9].item() == 1.0 - 0.75
    assert logits[0, 3].item() == 0.0  # never generated: untouched


async def test_penalised_sequences_run_in_the_batch(engine):
    sampling = SamplingParams(max_tokens=6, temperature=0, ignore_eos=True, presence_penalty=2.0, frequency_penalty=2.0)
    outputs = [o async for o in engine.generate(EngineRequest("p", (1, 3, 1032, 4), sampling))]
    assert sum(o.num_tokens for o in outputs) == 6 and outputs[-1].finish_reason == "length"
