"""Trains the classifier rail's model on the corpus's train split; thresholds come from dev.

    python -m ops.moderation.train                 # writes guardrails/models/moderation-linear-v1/

scikit-learn fits a TF-IDF (binary term presence, l2 norm) over the features of
:func:`guardrails.rails.features.analyze` and one logistic regression per head; the artifact keeps
only numbers (vocabulary, idf, weights) so serving needs numpy and no pickle. Held-out rows are
never read here: :func:`ops.moderation.corpus.load` is asked for ``train`` and ``dev`` only.

Thresholds: for each of the two flagging heads, the lowest score at which the head flags at most
``--max-dev-fpr`` of the dev split's benign rows (never below :data:`FLOOR`), so the heads together stay under
1 % false flags on data like dev.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from guardrails.rails.classifier import DEFAULT_MODEL, MODELS, LinearModel, segments
from guardrails.rails.features import FeatureIndex, analyze

from .corpus import CORPUS, MANIFEST, Item, load

ATTACK = ("jailbreak", "prompt_injection")
SEED = 10
# Never flag below this probability, whatever dev allows: dev's benign rows are a few hundred, and
# real traffic (system prompts, chit-chat) is more varied than they are.
FLOOR = 0.6
# Fragments per benign training row. 0: leave-one-source-out showed fragments teach "long means
# attack" (WritingBench left out: 72 % of its long benign prompts flagged with 2 per row); the
# eight-word minimum of the classifier rail handles short texts instead.
FRAGMENTS = 0


def _fit(x, y, weight: float = 1.0):
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=4.0 * weight, class_weight="balanced", max_iter=2000, random_state=SEED)
    model.fit(x, y)
    return model


def _threshold(scores: np.ndarray, benign: np.ndarray, max_fpr: float) -> float:
    negatives = np.sort(scores[benign])[::-1]
    allowed = int(np.floor(max_fpr * len(negatives)))
    # flag strictly above the (allowed+1)-th highest benign score
    cut = negatives[allowed] if allowed < len(negatives) else 0.0
    return float(max(FLOOR, np.nextafter(cut, 1.0)))


_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")


def fragments(items: Sequence[Item], per_item: int = 2, seed: int = SEED) -> list[Item]:
    """Short benign rows cut from benign rows: a sentence, a clause, a few words.

    Short inputs ("Hello, how are you?", "write to a.b@example.com") carry few features, and a model
    that saw only whole prompts scores them by its biases; fragments of benign text teach it that
    short is not suspicious. Only benign rows are cut (a fragment of an attack need not be one).
    """
    rng = random.Random(seed)
    out = []
    for item in items:
        if item.label != "benign":
            continue
        pieces = [p.strip() for p in _SENTENCE.findall(item.text) if len(p.strip()) >= 3]
        for n, piece in enumerate(rng.sample(pieces, min(per_item, len(pieces)))):
            words = piece.split()
            if len(words) > 6 and rng.random() < 0.5:
                start = rng.randrange(0, len(words) - 3)
                piece = " ".join(words[start:start + rng.randint(2, 6)])
            out.append(Item(f"{item.id}-frag{n}", piece, "benign", None, item.source, item.licence, item.split))
    return out


def train(items: Sequence[Item], dev: Sequence[Item], max_fpr: float) -> tuple[dict, dict]:
    """Fits the heads; returns (arrays, metadata). Benign fragments are added to the training rows
    only: on dev they would dilute the false-flag rate the thresholds are picked for."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    items = list(items) + fragments(items, per_item=FRAGMENTS)

    vectorizer = TfidfVectorizer(analyzer=analyze, binary=True, norm="l2", min_df=2, sublinear_tf=False)
    x = vectorizer.fit_transform([i.text for i in items])
    labels = np.array([i.label for i in items])
    attack = _fit(x, np.isin(labels, ATTACK).astype(int))
    # The harmful head learns harmful vs benign: attacks are left out (they wrap harmful questions,
    # so calling them "not harmful" would teach it to look away from role-play).
    keep = labels != "jailbreak"
    keep &= labels != "prompt_injection"
    harmful = _fit(x[keep], (labels[keep] == "harmful").astype(int))
    is_attack = np.isin(labels, ATTACK)
    kind = _fit(x[is_attack], (labels[is_attack] == "jailbreak").astype(int))
    cats = np.array([i.category or "" for i in items])
    has_cat = (labels == "harmful") & (cats != "")
    from sklearn.linear_model import LogisticRegression

    category = LogisticRegression(C=4.0, max_iter=2000, random_state=SEED).fit(x[has_cat], cats[has_cat])

    dev_labels = np.array([i.label for i in dev])
    benign = dev_labels == "benign"
    arrays = {
        "idf": vectorizer.idf_.astype(np.float32),
        "coef": np.vstack([attack.coef_[0], harmful.coef_[0], kind.coef_[0]]).astype(np.float32),
        "bias": np.array([attack.intercept_[0], harmful.intercept_[0], kind.intercept_[0]], dtype=np.float32),
        "category_coef": category.coef_.astype(np.float32),
        "category_bias": category.intercept_.astype(np.float32),
    }
    vocab = [None] * len(vectorizer.vocabulary_)
    for feature, column in vectorizer.vocabulary_.items():
        vocab[column] = feature
    # Dev scores come from the serving code (tails of long texts included), so the thresholds fit it.
    model = in_memory_model(arrays, {"heads": ["attack", "harmful", "jailbreak"], "thresholds": {},
                                     "harm_categories": [str(c) for c in category.classes_], "vocab": vocab})
    dev_scores = [[model.scores(seg) for seg in segments([i.text])] for i in dev]
    attack_dev = np.array([max((s.attack for s in segs), default=0.0) for segs in dev_scores])
    harm_dev = np.array([max((s.harmful for s in segs), default=0.0) for segs in dev_scores])
    thresholds = {"attack": _threshold(attack_dev, benign, max_fpr), "harmful": _threshold(harm_dev, benign, max_fpr)}
    flagged = (attack_dev >= thresholds["attack"]) | (harm_dev >= thresholds["harmful"])
    metrics = {"dev": {
        "benign": int(benign.sum()),
        "false_flag_rate": float(flagged[benign].mean()),
        **{f"recall_{label}": float(flagged[dev_labels == label].mean()) for label in ("jailbreak", "prompt_injection", "harmful")
           if (dev_labels == label).any()},
    }}
    meta = {
        "heads": ["attack", "harmful", "jailbreak"],
        "thresholds": thresholds,
        "harm_categories": [str(c) for c in category.classes_],
        "metrics": metrics,
        "vocab": vocab,
    }
    return arrays, meta


def in_memory_model(arrays: dict, meta: dict) -> LinearModel:
    """A :class:`LinearModel` from freshly trained arrays (the same maths as a loaded artifact)."""
    model = LinearModel.__new__(LinearModel)
    model._idf = arrays["idf"].astype(np.float64)
    model._coef = arrays["coef"].astype(np.float64)
    model._bias = arrays["bias"].astype(np.float64)
    model._cat_coef = arrays["category_coef"].astype(np.float64)
    model._cat_bias = arrays["category_bias"].astype(np.float64)
    model.heads, model.thresholds = meta["heads"], meta["thresholds"]
    model.harm_categories = meta["harm_categories"]
    model._index = FeatureIndex(meta["vocab"])
    model.name, model.meta = "in-memory", meta
    return model


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--out", type=Path, default=MODELS / DEFAULT_MODEL)
    parser.add_argument("--max-dev-fpr", type=float, default=0.005)
    args = parser.parse_args(argv)
    items = load(args.corpus, ["train"])
    dev = load(args.corpus, ["dev"])
    arrays, meta = train(items, dev, args.max_dev_fpr)
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out / "weights.npz", **arrays)
    (args.out / "vocab.json").write_text(json.dumps(meta.pop("vocab"), ensure_ascii=False))
    corpus_manifest = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}
    model = {
        "name": args.out.name,
        "library": "scikit-learn TfidfVectorizer(binary, l2) + LogisticRegression(C=4, balanced) per head",
        **meta,
        "data": {
            "corpus_sha256": hashlib.sha256(args.corpus.read_bytes()).hexdigest(),
            "splits_used": ["train", "dev (thresholds only)"],
            "train_counts": dict(Counter(f"{i.source}:{i.label}" for i in items)),
            "dev_counts": dict(Counter(i.label for i in dev)),
            "packages": corpus_manifest.get("packages", {}),
        },
    }
    (args.out / "model.json").write_text(json.dumps(model, indent=1, sort_keys=True) + "\n")
    (args.out / "metrics.json").write_text(json.dumps(meta["metrics"], indent=2) + "\n")
    print(json.dumps({"thresholds": meta["thresholds"], **meta["metrics"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
