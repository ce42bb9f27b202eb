"""Runs an offline rail on every view of a text (:mod:`guardrails.normalize`), spans on the original.

The wrapped rail scans the original and each normalised or decoded view; a finding on a view has its
span mapped back to the original text (so masks land on what was sent) and its kind suffixed with
the view (``override@base64``). A finding seen in several views is reported once.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..normalize import views
from ..verdict import Finding
from .base import OfflineRail


class ViewsRail:
    """An offline rail that checks the normalised views of its input too.

    Args:
        rail: The rail to run on each view; a rail with ``scan_views`` (the classifier) gets all the
            views at once instead.
    """

    def __init__(self, rail: OfflineRail) -> None:
        self.rail = rail
        self.name = rail.name

    def categories(self) -> Sequence[str]:
        """The wrapped rail's categories."""
        return self.rail.categories()

    def scan(self, text: str) -> list[Finding]:
        """Findings on the original and on every view, with spans into the original."""
        all_views = views(text)
        scan_views = getattr(self.rail, "scan_views", None)
        if scan_views is not None:
            # A model reads the normalised text rather than the raw one it was not trained on.
            names = {v.name for v in all_views}
            return scan_views([v.text for v in all_views if not (v.name == "original" and "normalized" in names)])
        if len(all_views) == 1:
            return self.rail.scan(text)
        found: list[Finding] = []
        seen: set[tuple[str, str, int, int]] = set()
        for view in all_views:
            for f in self.rail.scan(view.text):
                start, end = view.to_original(f.start, f.end) if f.has_span else (f.start, f.end)
                key = (f.category, f.kind, start, end)
                if key in seen:
                    continue
                seen.add(key)
                kind = f.kind if view.name == "original" else f"{f.kind}@{view.name}"
                found.append(Finding(f.rail, f.category, kind, f.action, start, end, f.replacement, f.score))
        found.sort(key=lambda f: f.start)
        return found
