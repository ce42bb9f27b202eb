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


def analyze(text: str) -> list[str]:
    """Every feature string of ``text`` (duplicates kept; callers that want presence use a set)."""
    lowered = text.lower()
    words = _WORD.findall(lowered)
    feats = ["w:" + w for w in words]
    feats += ["b:" + a + " " + b for a, b in zip(words, words[1:])]
    flat = _SPACE.sub(" ", lowered)
    feats += ["c:" + flat[i:i + CHAR_N] for i in range(len(flat) - CHAR_N + 1)]
    return feats
