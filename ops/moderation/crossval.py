"""Leave-one-source-out validation on the training sources: how the classifier does on a style it
has not seen, measured without touching the holdout.

    python -m ops.moderation.crossval                     # every training source with >= 40 rows
    python -m ops.moderation.crossval --source harmbench

For each training source S: train on the train split minus S, pick thresholds on the dev split
minus S (as ``ops.moderation.train`` does), then report the share of S's rows (train and dev)
flagged. Design choices of the classifier (features, regularisation, threshold rule) are compared
here; the holdout only ever measures the final model.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence

from guardrails.rails.classifier import segments
from guardrails.rails.harm import HarmfulRequestRail

from .corpus import CORPUS, load
from .train import in_memory_model, train


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", action="append", help="source to leave out (repeatable)")
    parser.add_argument("--max-dev-fpr", type=float, default=0.005)
    parser.add_argument("--with-heuristic", action="store_true",
                        help="also count the harmful_request rail's flags (the classifier OR the heuristic)")
    args = parser.parse_args(argv)
    items = load(CORPUS, ["train", "dev"])
    sizes = Counter(i.source for i in items)
    sources = args.source or sorted(s for s, n in sizes.items() if n >= 40)
    for source in sources:
        train_items = [i for i in items if i.split == "train" and i.source != source]
        dev_items = [i for i in items if i.split == "dev" and i.source != source]
        left_out = [i for i in items if i.source == source]
        arrays, meta = train(train_items, dev_items, args.max_dev_fpr)
        model = in_memory_model(arrays, meta)
        flagged = Counter()
        heuristic = HarmfulRequestRail() if args.with_heuristic else None
        total = Counter(i.label for i in left_out)
        for item in left_out:
            scores = [model.scores(seg) for seg in segments([item.text])]
            if (max((s.attack for s in scores), default=0.0) >= model.thresholds["attack"]
                    or max((s.harmful for s in scores), default=0.0) >= model.thresholds["harmful"]
                    or (heuristic is not None and heuristic.scan(item.text))):
                flagged[item.label] += 1
        cells = ", ".join(f"{label} {flagged[label]}/{n} = {flagged[label] / n:.3f}" for label, n in sorted(total.items()))
        print(f"{source:26s} {cells}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
