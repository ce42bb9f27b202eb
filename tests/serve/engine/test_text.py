"""Incremental detokenization and stop strings."""

from __future__ import annotations

import pytest

from serve.engine.text import IncrementalDetokenizer, StopStringFilter


@pytest.mark.parametrize("text", ["plain words here", "multi-byte: é ü ß 你好 🚀🚀 done", "  spaces\n\tand tabs "])
def test_deltas_concatenate_to_the_full_decode(tiny_tokenizer, text):
    prompt = tiny_tokenizer("prefix", add_special_tokens=True)["input_ids"]
    ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    detokenizer = IncrementalDetokenizer(tiny_tokenizer, prompt)
    deltas = [detokenizer.push(i) for i in ids]
    # The v3 SentencePiece tokenizer: a word's leading space comes from its token ("▁plain").
    whole = tiny_tokenizer.decode(prompt + ids, skip_special_tokens=True)
    assert "".join(deltas) == whole[len(tiny_tokenizer.decode(prompt, skip_special_tokens=True)):]
    assert "".join(deltas).strip() == text.strip()
    assert not any("\ufffd" in d for d in deltas)


def test_byte_fallback_tokens_wait_for_their_character(tiny_tokenizer):
    ids = tiny_tokenizer("🧪", add_special_tokens=False)["input_ids"]
    pieces = tiny_tokenizer.convert_ids_to_tokens(ids)
    assert sum(p.startswith("<0x") for p in pieces) == 4  # the emoji is four byte tokens in v3
    detokenizer = IncrementalDetokenizer(tiny_tokenizer, [1])
    deltas = [detokenizer.push(i) for i in ids]
    assert "".join(deltas).strip() == "🧪"
    assert "🧪" in deltas[-1] and not any("\ufffd" in d for d in deltas)


def test_shown_control_tokens_are_written_others_skipped(tiny_tokenizer):
    tool_calls, inst = 5, 3  # [TOOL_CALLS] and [INST] in Mistral v3
    body = tiny_tokenizer(' [{"a": 1}]', add_special_tokens=False)["input_ids"]
    detokenizer = IncrementalDetokenizer(tiny_tokenizer, [1, 3, 4], show=[tool_calls])
    text = "".join(detokenizer.push(i) for i in [tool_calls, *body, inst])
    assert text.startswith("[TOOL_CALLS]") and text.endswith('[{"a": 1}]') and "[INST]" not in text


def test_stop_string_split_across_pieces_is_cut():
    stop = StopStringFilter(["END"])
    assert stop.feed("hello E") == ("hello ", False)
    assert stop.feed("N") == ("", False)
    assert stop.feed("D and more") == ("", True)


def test_near_miss_is_released():
    stop = StopStringFilter(["END"])
    assert stop.feed("the EN") == ("the ", False)
    assert stop.feed("Xtra") == ("ENXtra", False)
    assert stop.feed("E") == ("", False)
    assert stop.flush() == "E"


def test_earliest_of_several_stops_wins():
    stop = StopStringFilter(["bb", "a"])
    assert stop.feed("xxbbya") == ("xx", True)


def test_without_stop_strings_text_passes_through():
    assert StopStringFilter([]).feed("anything") == ("anything", False)
