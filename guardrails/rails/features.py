"""The text features of the learned classifier: one function shared by training and serving.

Lowercased word unigrams and bigrams plus character 4-grams of the whitespace-collapsed text, as
strings. Training (``ops.moderation.train``) hands this function to scikit-learn as the analyzer;
serving looks the same strings up in the shipped vocabulary, so both see identical features.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-z0-9']+|[^\sa-z0-9']")
_SPACE = re.compile(r"\s+")
CHAR_N = 4


def split(text: str) -> tuple[list[str], str]:
    """The lowercased words and the whitespace-collapsed lowercased text the features come from."""
    lowered = text.lower()
    return _WORD.findall(lowered), _SPACE.sub(" ", lowered)


def analyze(text: str) -> list[str]:
    """Every feature string of ``text`` (duplicates kept; callers that want presence use a set)."""
    words, flat = split(text)
    feats = ["w:" + w for w in words]
    feats += ["b:" + a + " " + b for a, b in zip(words, words[1:])]
    feats += ["c:" + flat[i:i + CHAR_N] for i in range(len(flat) - CHAR_N + 1)]
    return feats


class FeatureIndex:
    """Feature string -> column, looked up without building the prefixed strings (serving speed).

    ``columns(text)`` equals ``{index[f] for f in analyze(text) if f in index}``.
    """

    def __init__(self, vocab: list[str]) -> None:
        self.words: dict[str, int] = {}
        self.bigrams: dict[str, int] = {}
        self.chars: dict[str, int] = {}
        tables = {"w": self.words, "b": self.bigrams, "c": self.chars}
        for column, feature in enumerate(vocab):
            tables[feature[0]][feature[2:]] = column

    def columns(self, text: str) -> set[int]:
        """The columns of the features present in ``text``."""
        words, flat = split(text)
        get_w, get_b, get_c = self.words.get, self.bigrams.get, self.chars.get
        found = {get_w(w) for w in set(words)}
        found.update(get_b(a + " " + b) for a, b in set(zip(words, words[1:])))
        found.update(map(get_c, {flat[i:i + CHAR_N] for i in range(len(flat) - CHAR_N + 1)}))
        found.discard(None)
        return found  # type: ignore[return-value]
