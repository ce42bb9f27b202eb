"""Precision, recall and false-flag rate of a policy's offline input rails on the corpus, with 95 % CIs.

    python -m ops.moderation.evaluate                       # default policy, holdout and dev
    python -m ops.moderation.evaluate --policy permissive --split holdout --errors
    python -m ops.moderation.evaluate --json report.json

The corpus is ``data/corpus.jsonl`` (built by ``python -m ops.moderation.corpus build``). Each row is
checked as an input through ``Moderator.check_input`` (every offline input rail, normalisation
included); an item counts as flagged when any rail found anything (the Moderations API's
``flagged``). Per group (label, and harm category for harmful rows):

* recall: the share of the group's items flagged;
* false-flag rate: the share of benign items flagged with one of the group's categories;
* precision: flagged group items over those plus the benign items flagged with the group's categories.

Intervals are Wilson score intervals (95 %). The same figures are printed for a naive baseline, the
twenty plain regular expressions of :data:`BASELINE` (the kind of list the issue compared against).
Only offline rails run; a policy with model rails needs the served model (see README).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .corpus import CORPUS, Item, load

ATTACKS = {"jailbreak": {"jailbreak"}, "prompt_injection": {"prompt_injection"}}
HARM = {
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent", "self-harm",
    "self-harm/intent", "self-harm/instructions", "sexual", "sexual/minors", "violence", "violence/graphic",
    "denied_topic",
}

# A naive baseline: twenty plain patterns anyone would write first.
BASELINE: tuple[str, ...] = (
    r"ignore (all )?(the )?(previous|prior|above) (instructions|prompts?)",
    r"disregard (all )?(previous|prior|your) (instructions|rules|guidelines)",
    r"\bDAN\b|do anything now",
    r"developer mode",
    r"jailbr(ea|o)k",
    r"no (restrictions|limitations|filters|rules|ethics)",
    r"(pretend|act as|role-?play)",
    r"(system|initial|hidden) prompt",
    r"stay in character",
    r"\b(bomb|explosive|detonat)",
    r"\b(kill|murder|assassinat)",
    r"\b(meth|cocaine|heroin|fentanyl)\b",
    r"\b(hack|malware|ransomware|keylogger|exploit)",
    r"\b(weapon|firearm|gun)s?\b",
    r"\b(poison|ricin|sarin|anthrax)",
    r"\b(suicide|self-harm|cut myself)",
    r"\b(steal|theft|launder|counterfeit|fraud)",
    r"\b(racist|slur|inferior race)",
    r"\b(porn|explicit sex)",
    r"\b(uncensored|unfiltered|unrestricted)",
)
_BASELINE = re.compile("|".join(f"(?:{p})" for p in BASELINE), re.I)


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (None when ``n`` is 0)."""
    if n == 0:
        return None
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _rate(k: int, n: int) -> dict:
    return {"value": k / n if n else None, "k": k, "n": n, "ci95": wilson(k, n)}


def groups(items: Sequence[Item]) -> dict[str, tuple[list[int], set[str]]]:
    """Group name -> (indices of its items, the categories that count as flagging it)."""
    out: dict[str, tuple[list[int], set[str]]] = {}
    for label, cats in ATTACKS.items():
        out[label] = ([i for i, it in enumerate(items) if it.label == label], cats)
    out["harmful"] = ([i for i, it in enumerate(items) if it.label == "harmful"], HARM)
    for category in sorted({it.category for it in items if it.label == "harmful" and it.category}):
        out[f"harmful:{category}"] = (
            [i for i, it in enumerate(items) if it.label == "harmful" and it.category == category], HARM,
        )
    return {k: v for k, v in out.items() if v[0]}


def score(items: Sequence[Item], flagged: Sequence[bool], categories: Sequence[set[str]],
          blocked: Sequence[bool] | None = None) -> dict:
    """The report for one split: per group, and overall (``blocked``: benign items blocked, not
    just flagged; masking personal data flags a text without blocking it)."""
    benign = [i for i, it in enumerate(items) if it.label == "benign"]
    report: dict = {"items": len(items), "benign": len(benign), "groups": {}}
    for name, (members, cats) in groups(items).items():
        tp = sum(flagged[i] for i in members)
        fp = sum(bool(categories[i] & cats) for i in benign)
        report["groups"][name] = {
            "recall": _rate(tp, len(members)), "false_flag_rate": _rate(fp, len(benign)),
            "precision": _rate(tp, tp + fp),
        }
    positives = [i for i, it in enumerate(items) if it.label != "benign"]
    tp = sum(flagged[i] for i in positives)
    fp = sum(flagged[i] for i in benign)
    report["overall"] = {
        "recall": _rate(tp, len(positives)), "false_flag_rate": _rate(fp, len(benign)), "precision": _rate(tp, tp + fp),
        "false_block_rate": _rate(sum((blocked or flagged)[i] for i in benign), len(benign)),
    }
    return report


def baseline(items: Sequence[Item]) -> tuple[list[bool], list[set[str]]]:
    """The baseline's flags (it names no category: a flag counts against every group)."""
    flags = [bool(_BASELINE.search(it.text)) for it in items]
    return flags, [set(HARM) | {"jailbreak", "prompt_injection"} if f else set() for f in flags]


async def run_policy(policy_name: str, policies_dir: Path | None, items: Sequence[Item]) -> list:
    """Every item through the policy's offline input rails; returns the verdicts."""
    from guardrails.audit import AuditLog
    from guardrails.metrics import CountingMetrics
    from guardrails.moderator import Moderator
    from guardrails.policy import PACKAGED_POLICIES, PolicySet, load_policy

    policy = load_policy((policies_dir or PACKAGED_POLICIES) / policy_name)
    if policy.needs_llm:
        policy = _offline_only(policy)
    moderator = Moderator(
        PolicySet({policy_name: policy}, policy_name), metrics=CountingMetrics(), audit=AuditLog(logger=_quiet()),
    )
    return [await moderator.check_input(item.text, policy_name) for item in items]


def _offline_only(policy):
    """The policy without its model rails (the self-checks need the served model: not run here)."""
    import dataclasses

    keep = tuple(s for s in policy.input_rails if s.offline is not None)
    return dataclasses.replace(policy, input_rails=keep, output_rails=tuple(
        s for s in policy.output_rails if s.offline is not None))


def _quiet():
    import logging

    logger = logging.getLogger("ops.moderation.audit")
    logger.disabled = True
    return logger


def evaluate(policy: str, split: str, corpus: Path = CORPUS, policies_dir: Path | None = None) -> dict:
    """The report of ``policy`` and of the baseline on one split."""
    items = load(corpus, [split])
    verdicts = asyncio.run(run_policy(policy, policies_dir, items))
    ours = score(items, [v.flagged for v in verdicts], [{f.category for f in v.findings} for v in verdicts],
                 [v.blocked for v in verdicts])
    base = score(items, *baseline(items))
    misses = [
        {"id": it.id, "label": it.label, "flagged": v.flagged, "rails": sorted({f.rail for f in v.findings}),
         "text": it.text[:100]}
        for it, v in zip(items, verdicts) if v.flagged != (it.label != "benign")
    ]
    return {"policy": policy, "split": split, "ours": ours, "baseline": base, "errors": misses}


def _cell(rate: dict) -> str:
    if rate["value"] is None:
        return f"{'n/a':>20s}"
    lo, hi = rate["ci95"]
    return f"{rate['value']:6.3f} [{lo:.3f},{hi:.3f}]"


def print_report(report: dict, errors: bool = False, out: Callable[[str], None] = print) -> None:
    """The side-by-side table: ours, then the baseline, per group."""
    ours, base = report["ours"], report["baseline"]
    out(f"policy {report['policy']}, split {report['split']}: {ours['items']} items, {ours['benign']} benign "
        "(95 % Wilson intervals)")
    out(f"{'group':26s} {'n':>4s}  {'recall (ours)':>21s} {'recall (baseline)':>21s}  "
        f"{'false-flag (ours)':>21s} {'false-flag (baseline)':>21s}  {'precision (ours)':>21s}")
    rows = list(ours["groups"].items()) + [("overall", ours["overall"])]
    for name, g in rows:
        b = base["overall"] if name == "overall" else base["groups"][name]
        out(f"{name:26s} {g['recall']['n']:4d}  {_cell(g['recall']):>21s} {_cell(b['recall']):>21s}  "
            f"{_cell(g['false_flag_rate']):>21s} {_cell(b['false_flag_rate']):>21s}  {_cell(g['precision']):>21s}")
    out(f"benign blocked (not just flagged): ours {_cell(ours['overall']['false_block_rate'])}, "
        f"baseline {_cell(base['overall']['false_block_rate'])}")
    if errors:
        for e in report["errors"]:
            out(f"  {e['id']:28s} {e['label']:16s} flagged={e['flagged']!s:5s} {e['rails']} {e['text']!r}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", action="append", help="policy name (repeatable; default: default)")
    parser.add_argument("--policies-dir", type=Path, default=None, help="policies directory (default: packaged)")
    parser.add_argument("--split", action="append", choices=("holdout", "dev", "train"),
                        help="corpus split (repeatable; default: holdout and dev)")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--errors", action="store_true", help="list the misclassified items")
    parser.add_argument("--json", type=Path, default=None, help="also write the reports as JSON here")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    reports = []
    for policy in args.policy or ["default"]:
        for split in args.split or ["holdout", "dev"]:
            report = evaluate(policy, split, args.corpus, args.policies_dir)
            print_report(report, args.errors)
            print()
            reports.append(report)
    if args.json:
        args.json.write_text(json.dumps(reports, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
