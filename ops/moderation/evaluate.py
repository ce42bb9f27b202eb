"""Precision, recall and false-block rate of a policy's rails on the labeled evaluation set.

    python -m ops.moderation.evaluate                      # the default policy
    python -m ops.moderation.evaluate --policy permissive --errors
    python -m ops.moderation.evaluate --holdout             # the second, later set

Each item of ``data/eval.jsonl`` has a direction (input/output), a category (``benign`` or the
moderation category that should flag it) and the expected action under the default policy. Per
category: precision and recall of "flagged with this category", and the share of benign items that
category flags (false flags). Overall: an item counts as flagged when any rail blocked or masked it;
the false-block rate is the share of benign items blocked.
Only offline rails run here; a policy with model rails needs the served model (see README).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).parent / "data" / "eval.jsonl"
# Written after the rails were tuned on DATA, evaluated once as unseen data (the honest estimate,
# recorded in the closing note), then its misses were fixed too: it is no longer unseen.
HOLDOUT = Path(__file__).parent / "data" / "holdout.jsonl"


@dataclass(frozen=True)
class Item:
    """One labeled text."""

    id: str
    direction: str
    category: str
    expected: str
    text: str


def load_items(path: Path = DATA) -> list[Item]:
    """Reads the evaluation set."""
    return [Item(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def score(items: Sequence[Item], verdicts: Sequence) -> dict:
    """Per-category and overall metrics of the verdicts (one per item, same order)."""
    benign = [i for i, item in enumerate(items) if item.category == "benign"]
    report: dict = {"categories": {}, "items": len(items), "benign": len(benign)}
    for category in sorted({item.category for item in items} - {"benign"}):
        hits = [category in v.categories() and v.categories()[category] for v in verdicts]
        tp = sum(1 for item, hit in zip(items, hits) if hit and item.category == category)
        fp = sum(1 for item, hit in zip(items, hits) if hit and item.category != category)
        pos = sum(1 for item in items if item.category == category)
        report["categories"][category] = {
            "positives": pos, "precision": _ratio(tp, tp + fp), "recall": _ratio(tp, pos),
            "false_flag_rate": _ratio(sum(1 for i in benign if hits[i]), len(benign)),
        }
    flagged = [v.flagged for v in verdicts]
    tp = sum(1 for item, f in zip(items, flagged) if f and item.category != "benign")
    fp = sum(1 for i in benign if flagged[i])
    positives = len(items) - len(benign)
    report["overall"] = {
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, positives),
        "false_block_rate": _ratio(sum(1 for i in benign if verdicts[i].blocked), len(benign)),
        "false_flag_rate": _ratio(fp, len(benign)),
        "expected_action_rate": _ratio(
            sum(1 for item, v in zip(items, verdicts) if _action(v) == item.expected), len(items)
        ),
    }
    return report


def _action(verdict) -> str:
    return {"blocked": "block", "masked": "mask", "allowed": "allow"}[verdict.action]


def errors(items: Sequence[Item], verdicts: Sequence) -> list[str]:
    """One line per item whose verdict differs from its expected action."""
    return [
        f"{item.id:12s} expected {item.expected:5s} got {_action(v):5s} rail={v.rail} | {item.text[:90]!r}"
        for item, v in zip(items, verdicts)
        if _action(v) != item.expected
    ]


async def evaluate(policy_name: str, policies_dir: Path | None, items: Sequence[Item]) -> tuple[dict, list]:
    """Runs every item through the policy's offline rails."""
    from guardrails.audit import AuditLog
    from guardrails.metrics import CountingMetrics
    from guardrails.moderator import Moderator
    from guardrails.policy import PACKAGED_POLICIES, PolicySet, load_policy

    policy = load_policy((policies_dir or PACKAGED_POLICIES) / policy_name)
    policies = PolicySet({policy_name: policy}, policy_name)
    if policy.needs_llm:
        raise SystemExit(f"policy {policy_name!r} has model rails; this tool evaluates offline policies only")
    moderator = Moderator(policies, metrics=CountingMetrics(), audit=AuditLog(logger=_quiet()))
    verdicts = []
    for item in items:
        check = moderator.check_input if item.direction == "input" else moderator.check_output
        verdicts.append(await check(item.text, policy_name))
    return score(items, verdicts), verdicts


def _quiet():
    import logging

    logger = logging.getLogger("ops.moderation.audit")
    logger.disabled = True
    return logger


def _fmt(value: float | None) -> str:
    return "  n/a" if value is None else f"{value:5.3f}"


def print_report(policy: str, report: dict) -> None:
    """The table this tool prints."""
    print(f"policy {policy}: {report['items']} items, {report['benign']} benign")
    print(f"{'category':18s} {'n':>3s} {'precision':>9s} {'recall':>7s} {'false-flag':>10s}")
    for name, c in report["categories"].items():
        cells = f"{_fmt(c['precision']):>9s} {_fmt(c['recall']):>7s} {_fmt(c['false_flag_rate']):>10s}"
        print(f"{name:18s} {c['positives']:3d} {cells}")
    o = report["overall"]
    print(
        f"{'overall':18s} {report['items'] - report['benign']:3d} {_fmt(o['precision']):>9s} {_fmt(o['recall']):>7s} "
        f"{_fmt(o['false_flag_rate']):>10s}"
    )
    print(f"false-block rate (benign blocked): {_fmt(o['false_block_rate'])}   "
          f"expected action (block/mask/allow) matched: {_fmt(o['expected_action_rate'])}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default="default", help="policy name (default: default)")
    parser.add_argument("--policies-dir", type=Path, default=None, help="policies directory (default: packaged)")
    parser.add_argument("--data", type=Path, default=DATA, help="evaluation set (JSONL)")
    parser.add_argument("--holdout", action="store_true", help="use the held-out set instead of --data")
    parser.add_argument("--errors", action="store_true", help="list the items whose action differs from the label")
    parser.add_argument("--json", type=Path, default=None, help="also write the report as JSON here")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    items = load_items(HOLDOUT if args.holdout else args.data)
    report, verdicts = asyncio.run(evaluate(args.policy, args.policies_dir, items))
    print_report(args.policy, report)
    if args.errors:
        print("\n".join(errors(items, verdicts)) or "no errors")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
