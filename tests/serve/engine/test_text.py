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
    assert "".join(deltas) == tiny_tokenizer.decode(ids, skip_special_tokens=True) == text
    assert not any("\ufffd" in d for d in deltas)


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
