"""Text normalisation before the offline rails: one original text, several views of it.

Attackers hide words from pattern rails with Unicode tricks and encodings. :func:`views` returns the
texts the rails check for one input:

* ``original``: the text as sent (always first; masks are applied to it);
* ``normalized``: invisible format characters (Unicode category Cf: zero-width, soft hyphen, bidi
  controls, tags) removed, NFKC applied (fullwidth and compatibility forms), and confusable
  homoglyphs folded to their ASCII look-alikes from Unicode's confusables data (via the maintained
  ``confusable-homoglyphs`` package), so ``Ｉｇｎｏｒｅ``, ``ig\u200bnore`` and Cyrillic ``іgnоrе``
  all read ``ignore``;
* decoded views, only when the text holds such a payload: ``base64``, ``hex``, ``rot13``,
  ``leetspeak`` (``1gn0r3``) and ``spaced`` (``i g n o r e``).

Every view carries a span map: ``offsets[i]`` is the index in the original text of the view's
character ``i``, so a rail's finding on a view maps back to the original (:meth:`View.to_original`)
and masks still land on what the user wrote. Plain ASCII text with no payload has one view and costs
a few regular-expression scans.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

_B64 = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{16,}={0,2}(?![A-Za-z0-9+/=])")
_B64_URL = re.compile(r"(?<![A-Za-z0-9_=-])[A-Za-z0-9_-]{16,}={0,2}(?![A-Za-z0-9_=-])")
# Anchored at a word start so ordinary text fails after a character or two.
_HEX = re.compile(r"(?<![0-9A-Za-z\\])(?:\\x|0x)?[0-9a-fA-F]{2}(?:[\s:]?(?:\\x|0x)?[0-9a-fA-F]{2}){7,}(?![0-9A-Za-z])")
_HEX_DIGITS = re.compile(r"[0-9a-fA-F]{2}")
_SPACED = re.compile(r"(?<!\w)(?:[A-Za-z][ ._*\-|/]{1,3}){3,}[A-Za-z](?!\w)")
_LEET_WORD = re.compile(r"[A-Za-z]*[0134578@$|!][A-Za-z0134578@$|!]*")
# A word mixing letters with at least two leet symbols ("1gn0r3", "h4ck"): cheap to rule out.
# NOTE: a single "@" between letters is an e-mail address far more often than leetspeak.
_LEET_HINT = re.compile(r"\b(?=[A-Za-z0134578@$]*[A-Za-z])(?:[A-Za-z]*[0134578@$]){2}[A-Za-z0134578@$]*\b|"
                        r"\b[A-Za-z]+[0134578$][A-Za-z]+\b")
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "@": "a", "$": "s",
                       "|": "l", "!": "i"})
_WORDS = re.compile(r"[a-z]+")
# The commonest English words: a rot13 view is kept only when it reads as English and the text does not.
_COMMON = frozenset(
    "the be to of and a in that have i it for not on with he as you do at this but his by from they we say her "
    "she or an will my one all would there their what so up out if about who get which go me when make can like "
    "time no just him know take people into year your good some could them see other than then now look only "
    "come its over think also back after use two how our work first well way even new want because any these "
    "give day most us is are was were how tell ignore previous instructions".split()
)
_ROT13_HINT = re.compile(r"rot-?\s?13|caesar|cipher", re.I)


@dataclass(frozen=True)
class View:
    """One text the rails check, and where its characters came from.

    Attributes:
        name: ``original``, ``normalized``, ``base64``, ``hex``, ``rot13``, ``leetspeak`` or ``spaced``.
        text: The view's text.
        offsets: For each character of ``text``, its index in the original (``None``: the identity).
    """

    name: str
    text: str
    offsets: tuple[int, ...] | None = None

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """The original span ``[start, end)`` of the view's span (the identity for ``original``)."""
        if self.offsets is None or start < 0:
            return start, end
        if not self.offsets:
            return -1, -1
        start = min(max(start, 0), len(self.offsets) - 1)
        last = min(max(end - 1, start), len(self.offsets) - 1)
        return self.offsets[start], self.offsets[last] + 1


@lru_cache(maxsize=1)
def _confusable_map() -> dict[str, str]:
    """Non-ASCII character -> its ASCII look-alike, from Unicode's confusables.txt (built once)."""
    from confusable_homoglyphs import confusables

    folded: dict[str, str] = {}
    for char, glyphs in confusables.confusables_data.items():
        if len(char) != 1 or char.isascii():
            continue
        for glyph in glyphs:
            target = glyph["c"]
            if target.isascii() and target.isalnum():
                folded[char] = target
                break
    return folded


def _normalize(text: str) -> tuple[str, tuple[int, ...]]:
    fold = _confusable_map()
    out: list[str] = []
    offsets: list[int] = []
    for index, char in enumerate(text):
        if char.isascii():
            out.append(char)
            offsets.append(index)
            continue
        if unicodedata.category(char) == "Cf":
            continue
        for piece in unicodedata.normalize("NFKC", char):
            if unicodedata.category(piece) == "Cf":
                continue
            piece = fold.get(piece, piece)
            out.append(piece)
            offsets.extend([index] * len(piece))
    return "".join(out), tuple(offsets)


def _printable(data: bytes) -> str | None:
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    letters = sum(c.isalpha() or c.isspace() for c in decoded)
    return decoded if len(decoded) >= 4 and letters >= 0.8 * len(decoded) else None


def _decoded_view(name: str, text: str, pieces: Sequence[tuple]) -> View | None:
    """The text with each ``(start, end, replacement[, offsets])`` substituted; a replacement maps to
    its explicit offsets, or else spreads over its source span."""
    if not pieces:
        return None
    out: list[str] = []
    offsets: list[int] = []
    position = 0
    for start, end, replacement, *explicit in pieces:
        out.append(text[position:start])
        offsets.extend(range(position, start))
        out.append(replacement)
        if explicit:
            offsets.extend(explicit[0])
        else:
            # Decoded characters spread over the source token; the last one maps to its last character,
            # so a span over the whole decoded text covers the whole token.
            span, n = end - start, max(1, len(replacement))
            offsets.extend(start + (span - 1 if i == n - 1 else i * span // n) for i in range(len(replacement)))
        position = end
    out.append(text[position:])
    offsets.extend(range(position, len(text)))
    return View(name, "".join(out), tuple(offsets))


def _base64_pieces(text: str) -> list[tuple[int, int, str]]:
    pieces: list[tuple[int, int, str]] = []
    for pattern, decode in ((_B64, base64.b64decode), (_B64_URL, base64.urlsafe_b64decode)):
        for m in pattern.finditer(text):
            token = m.group()
            if token.isalpha() and (token.islower() or token.isupper()):  # an ordinary long word
                continue
            try:
                data = decode(token + "=" * (-len(token) % 4))
            except (binascii.Error, ValueError):
                continue
            decoded = _printable(data)
            if decoded is not None and not any(p[0] == m.start() for p in pieces):
                pieces.append((m.start(), m.end(), decoded))
    return sorted(pieces)


def _hex_pieces(text: str) -> list[tuple[int, int, str]]:
    pieces = []
    for m in _HEX.finditer(text):
        digits = "".join(_HEX_DIGITS.findall(m.group().replace("\\x", "").replace("0x", "")))
        decoded = _printable(bytes.fromhex(digits)) if len(digits) % 2 == 0 else None
        if decoded is not None:
            pieces.append((m.start(), m.end(), decoded))
    return pieces


def _spaced_pieces(text: str) -> list[tuple[int, int, str, list[int]]]:
    pieces: list[tuple[int, int, str, list[int]]] = []
    for m in _SPACED.finditer(text):
        letters = [(m.start() + i, c) for i, c in enumerate(m.group()) if c.isalpha()]
        pieces.append((m.start(), m.end(), "".join(c for _, c in letters), [i for i, _ in letters]))
    return pieces


def _common_ratio(text: str) -> float:
    words = _WORDS.findall(text.lower())[:80]
    return sum(w in _COMMON for w in words) / len(words) if len(words) >= 4 else 0.0


def _leet_view(text: str) -> View | None:
    if not _LEET_HINT.search(text):
        return None
    pieces = []
    for m in _LEET_WORD.finditer(text):
        word = m.group()
        if any(c.isalpha() for c in word) and not word.isdigit():
            pieces.append((m.start(), m.end(), word.translate(_LEET)))
    changed = [p for p in pieces if p[2] != text[p[0]:p[1]]]
    # NOTE: same length replacements, so offsets stay one to one.
    return _decoded_view("leetspeak", text, changed) if changed else None


@lru_cache(maxsize=256)
def views(text: str) -> tuple[View, ...]:
    """The original text and every view of it that differs (cached: each rail asks for the same text)."""
    result = [View("original", text)]
    base = text
    base_view = result[0]
    if not text.isascii():
        normalized, offsets = _normalize(text)
        if normalized != text:
            base_view = View("normalized", normalized, offsets)
            result.append(base_view)
            base = normalized
    for name, finder in (("base64", _base64_pieces), ("hex", _hex_pieces), ("spaced", _spaced_pieces)):
        view = _decoded_view(name, base, finder(base))
        if view is not None:
            result.append(_compose(view, base_view))
    leet = _leet_view(base)
    if leet is not None:
        result.append(_compose(leet, base_view))
    if _ROT13_HINT.search(base) or (_common_ratio(base) < 0.1 and _WORDS.search(base.lower())):
        rotated = codecs.encode(base, "rot13")
        if _common_ratio(rotated) >= 0.25:
            result.append(_compose(View("rot13", rotated, tuple(range(len(rotated)))), base_view))
    return tuple(result)


def _compose(view: View, base: View) -> View:
    """A view derived from ``base`` with offsets into the original text."""
    if base.offsets is None:
        return view
    assert view.offsets is not None
    return View(view.name, view.text, tuple(base.offsets[i] for i in view.offsets))


def normalized_text(text: str) -> str:
    """The ``normalized`` view's text (the original when nothing changes)."""
    all_views = views(text)
    return next((v.text for v in all_views if v.name == "normalized"), text)
