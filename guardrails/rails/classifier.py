"""The learned classifier rail: linear models over word and character n-grams, shipped as data.

The model (``guardrails/models/<name>-<version>/``) is three files written by
``python -m ops.moderation.train``: ``vocab.json`` (feature strings in column order),
``weights.npz`` (idf, one weight row and bias per head, the harm-category head) and ``model.json``
(heads, thresholds picked on the dev split, category names, data manifest). No pickle: loading runs
no code from the artifact.

Heads: ``attack`` (jailbreak or prompt injection), ``harmful`` (a request for harmful content), and
two small heads that name the finding's category: ``jailbreak`` vs ``prompt_injection`` for an
attack, the OpenAI category (illicit, violence, hate ...) for a harmful request. Scoring a text is
one pass of feature extraction, a dictionary lookup per feature and a sparse dot product.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..verdict import Finding, FindingAction
from .features import FeatureIndex

MODELS = Path(__file__).resolve().parent.parent / "models"
DEFAULT_MODEL = "moderation-linear-v1"
ATTACK_CATEGORIES = ("jailbreak", "prompt_injection")
# A long text is also scored on its last paragraph: a request after a long context (a document, a
# profile, a story) is drowned by the context's features when the text is scored whole.
TAIL_FROM = 600
TAIL_CHARS = 400
# Shorter texts carry too few features for the model to be more than its biases ("Hello, how are
# you?", "You are terse."): they are left to the pattern rails, which catch short attacks by name.
MIN_WORDS = 8
_WORDS = re.compile(r"\w+")


class ModelLoadError(ValueError):
    """The classifier artifact is missing or malformed."""


@dataclass(frozen=True)
class Scores:
    """The classifier's probabilities for one text."""

    attack: float
    harmful: float
    attack_category: str
    harm_category: str
    harm_category_score: float


class LinearModel:
    """A loaded artifact. Use :meth:`load`."""

    def __init__(self, directory: Path) -> None:
        try:
            meta = json.loads((directory / "model.json").read_text(encoding="utf-8"))
            vocab = json.loads((directory / "vocab.json").read_text(encoding="utf-8"))
            with np.load(directory / "weights.npz", allow_pickle=False) as arrays:
                self._idf = arrays["idf"].astype(np.float64)
                self._coef = arrays["coef"].astype(np.float64)  # heads x features
                self._bias = arrays["bias"].astype(np.float64)
                self._cat_coef = arrays["category_coef"].astype(np.float64)  # categories x features
                self._cat_bias = arrays["category_bias"].astype(np.float64)
        except (OSError, KeyError, ValueError) as exc:
            raise ModelLoadError(f"cannot load classifier model from {directory}: {exc}") from None
        self.meta = meta
        self.name = meta["name"]
        self.heads: list[str] = meta["heads"]
        self.thresholds: dict[str, float] = meta["thresholds"]
        self.harm_categories: list[str] = meta["harm_categories"]
        self._index = FeatureIndex(vocab)
        if self._coef.shape != (len(self.heads), len(vocab)) or self._idf.shape != (len(vocab),):
            raise ModelLoadError(f"classifier model {directory}: weights do not match the vocabulary")

    @classmethod
    def load(cls, name_or_path: str = DEFAULT_MODEL) -> LinearModel:
        """Loads a packaged model by name, or a model directory by path."""
        path = Path(name_or_path)
        directory = path if path.is_dir() else MODELS / name_or_path
        if not directory.is_dir():
            raise ModelLoadError(f"no classifier model {name_or_path!r} (looked in {directory})")
        return cls(directory)

    def _vector(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        columns = self._index.columns(text)
        cols = np.fromiter(columns, dtype=np.int64, count=len(columns))
        values = self._idf[cols]
        norm = math.sqrt(float(values @ values)) or 1.0
        return cols, values / norm

    def scores(self, text: str) -> Scores:
        """The heads' probabilities for ``text``."""
        cols, values = self._vector(text)
        logits = self._coef[:, cols] @ values + self._bias
        probs = 1.0 / (1.0 + np.exp(-logits))
        by_head = dict(zip(self.heads, probs.tolist()))
        cat_logits = self._cat_coef[:, cols] @ values + self._cat_bias
        cat_probs = np.exp(cat_logits - cat_logits.max())
        cat_probs /= cat_probs.sum()
        best = int(cat_probs.argmax())
        attack_category = "jailbreak" if by_head.get("jailbreak", 0.5) >= 0.5 else "prompt_injection"
        return Scores(by_head["attack"], by_head["harmful"], attack_category, self.harm_categories[best],
                      float(cat_probs[best]))


def segments(views: Sequence[str]) -> list[str]:
    """What the model scores for one input: each view, and the tail of each long view (views of
    fewer than :data:`MIN_WORDS` words are not scored)."""
    out = [v for v in views if len(_WORDS.findall(v, 0, 400)) >= MIN_WORDS]
    for view in views:
        if len(view) > TAIL_FROM:
            tail = view[-TAIL_CHARS:]
            cut = max(tail.rfind("\n\n"), tail.find(". ") + 1 if ". " in tail else 0)
            out.append(tail[cut:].strip() if cut > 0 and len(tail) - cut > 40 else tail)
    return out


class ClassifierRail:
    """Flags jailbreaks, prompt injections and harmful requests with the learned model.

    Args:
        model: The loaded model.
        action: What a flagged text does (only ``block`` makes sense: there is no span to mask).
        thresholds: Per-head overrides of the model's dev-picked thresholds (``attack``, ``harmful``).
        blocked: The categories this rail reports (None: all); a policy leaves out what it allows.
    """

    name = "classifier"

    def __init__(self, model: LinearModel, action: FindingAction = "block",
                 thresholds: Mapping[str, float] | None = None, blocked: Sequence[str] | None = None) -> None:
        self._model = model
        self._action: FindingAction = action
        self._thresholds = {**model.thresholds, **(thresholds or {})}
        self._blocked = None if blocked is None else frozenset(blocked)

    def categories(self) -> Sequence[str]:
        """Every category the model can name."""
        names = (*ATTACK_CATEGORIES, *self._model.harm_categories)
        return tuple(n for n in names if self._blocked is None or n in self._blocked)

    def scan(self, text: str) -> list[Finding]:
        """Classifies ``text`` alone."""
        return self.scan_views([text])

    def scan_views(self, views: Sequence[str]) -> list[Finding]:
        """Classifies one input given as its views (normalised, decoded ...): each head takes its
        highest-scoring view, so an attack hidden in a base64 view counts as if written plainly."""
        scored = [self._model.scores(v) for v in segments(views)]
        if not scored:
            return []
        best_attack = max(scored, key=lambda x: x.attack)
        best_harm = max(scored, key=lambda x: x.harmful)
        s = Scores(best_attack.attack, best_harm.harmful, best_attack.attack_category, best_harm.harm_category,
                   best_harm.harm_category_score)
        found = []
        if s.attack >= self._thresholds["attack"]:
            found.append(Finding(self.name, s.attack_category, "attack", self._action, score=round(s.attack, 4)))
        if s.harmful >= self._thresholds["harmful"]:
            found.append(Finding(self.name, s.harm_category, "harmful", self._action, score=round(s.harmful, 4)))
        return [f for f in found if self._blocked is None or f.category in self._blocked]
