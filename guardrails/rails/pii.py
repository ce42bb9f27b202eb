"""Personal data: e-mail addresses, phone numbers, payment cards, national ids and IBANs.

Patterns find candidates; checksums confirm them where the format has one (Luhn for cards,
ISO 7064 mod 97 for IBANs, mod 23 for Spanish DNI/NIE, Verhoeff for Aadhaar), which is what keeps
order numbers, timestamps and version strings from being masked. All patterns are compiled once,
when the policy loads.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Literal

from ..verdict import Finding, FindingAction

CATEGORY = "pii"
Entity = Literal["email", "phone", "payment_card", "national_id", "iban"]
ENTITIES: tuple[Entity, ...] = ("email", "phone", "payment_card", "national_id", "iban")

REPLACEMENTS: dict[str, str] = {
    "email": "[EMAIL]",
    "phone": "[PHONE]",
    "payment_card": "[CARD_NUMBER]",
    "national_id": "[NATIONAL_ID]",
    "iban": "[IBAN]",
}

# RFC 2606 / 6761 reserved names are documentation, not people; role mailboxes are not personal.
_RESERVED_DOMAIN = re.compile(r"(^|\.)(example\.(com|net|org)|[^.]+\.(example|test|invalid|localhost))$", re.I)
_ROLE_LOCAL_PARTS = frozenset({"git", "noreply", "no-reply", "donotreply", "do-not-reply", "mailer-daemon"})

_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@"
    r"((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24})(?![\w-])"
)
_PHONE = re.compile(
    r"(?<![\w+])\+[1-9]\d{0,2}(?:[ .-]?\(?\d{1,4}\)?){2,6}(?![\w-])"  # international: +44 20 7946 0958
    r"|(?<![\w.-])(?:\([2-9]\d{2}\)[ ]?|[2-9]\d{2}[ .-])[2-9]\d{2}[ .-]\d{4}(?![\w-])"  # NANP: (415) 555-2671
    r"|(?<![\w.+-])0[1-9]\d{0,3}[ -]\d{3,4}[ -]?\d{3,4}(?![\w-])"  # national trunk 0: 020 7946 0958
    r"|(?<![\w.+-])0[1-9](?:[ .]\d{2}){4}(?![\w-])"  # French style: 06 12 34 56 78
)
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_IBAN = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{2})(\d{2})((?: ?[A-Za-z0-9]){11,30})(?![A-Za-z0-9])")
_SSN = re.compile(
    r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])"
    r"|(?i:\b(?:ssn|social security(?: number| no\.?)?)\b\W{0,5})(\d{3} ?\d{2} ?\d{4})(?!\d)"
)
_NINO = re.compile(r"\b(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b")
_DNI = re.compile(r"\b([XYZ]?)(\d{7,8})-?([A-Z])\b")
_CODICE_FISCALE = re.compile(r"[A-Z]{6}\d{2}[A-EHLMPR-T]\d{2}[A-Z]\d{3}[A-Z]\b")  # see _national_id_spans
_AADHAAR = re.compile(r"(?<![\d-])[2-9]\d{3} \d{4} \d{4}(?![\d-])")

# ISO 13616 lengths of the countries that issue IBANs.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}

_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
_VERHOEFF_D = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 0, 6, 7, 8, 9, 5], [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7], [4, 0, 1, 2, 3, 9, 5, 6, 7, 8], [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2], [7, 6, 5, 9, 8, 2, 1, 0, 4, 3], [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
]
_VERHOEFF_P = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 5, 7, 6, 2, 8, 3, 0, 9, 4], [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7], [9, 4, 5, 3, 1, 2, 6, 8, 7, 0], [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5], [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
]


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check of payment card numbers."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_brand_prefix(digits: str) -> bool:
    """Whether the number starts with an issuer prefix of a major card network and fits its length."""
    n = len(digits)
    two, four = int(digits[:2]), int(digits[:4])
    if digits[0] == "4":
        return n in (13, 16, 19)  # Visa
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return n == 16  # Mastercard
    if two in (34, 37):
        return n == 15  # American Express
    if digits.startswith("6011") or two == 65 or 644 <= int(digits[:3]) <= 649:
        return 16 <= n <= 19  # Discover
    if 3528 <= four <= 3589:
        return 16 <= n <= 19  # JCB
    if two in (36, 38, 39) or 300 <= int(digits[:3]) <= 305:
        return 14 <= n <= 19  # Diners Club
    if two == 62:
        return 16 <= n <= 19  # UnionPay
    return False


def iban_valid(iban: str) -> bool:
    """ISO 13616 length for the country and the ISO 7064 mod 97-10 check."""
    if IBAN_LENGTHS.get(iban[:2]) != len(iban):
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def verhoeff_valid(digits: str) -> bool:
    """The Verhoeff check used by Aadhaar numbers."""
    c = 0
    for i, ch in enumerate(reversed(digits)):
        c = _VERHOEFF_D[c][_VERHOEFF_P[i % 8][int(ch)]]
    return c == 0


def _dni_valid(match: re.Match[str]) -> bool:
    prefix, number, letter = match.groups()
    if prefix:  # NIE: X/Y/Z stand for 0/1/2 and the number has 7 digits
        if len(number) != 7:
            return False
        number = str("XYZ".index(prefix)) + number
    elif len(number) != 8:
        return False
    return _DNI_LETTERS[int(number) % 23] == letter


Windows = list[tuple[int, int]]

# Every entity but e-mail contains a run of digits (with separators) of at least six characters;
# patterns only run in windows around such runs, so text without one costs a single cheap scan.
_DIGIT_RUN = re.compile(r"\d[\d \-.()/]{4,}\d")
_MARGIN = 40  # context kept around a run: country codes, "SSN:", IBAN letters, boundary characters


def _merge(spans: list[tuple[int, int]]) -> Windows:
    merged: Windows = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def numeric_windows(text: str) -> Windows:
    """Where digit-bearing entities can be: digit runs with ``_MARGIN`` characters either side."""
    n = len(text)
    return _merge([(max(0, m.start() - _MARGIN), min(n, m.end() + _MARGIN)) for m in _DIGIT_RUN.finditer(text)])


def email_windows(text: str) -> Windows:
    """Where addresses can be: around each ``@`` (64-character local part, 255-character domain)."""
    n, spans, i = len(text), [], text.find("@")
    while i >= 0:
        spans.append((max(0, i - 66), min(n, i + 258)))
        i = text.find("@", i + 1)
    return _merge(spans)


def _finditer(pattern: re.Pattern[str], text: str, windows: Windows) -> Iterator[re.Match[str]]:
    # NOTE: windows overlap no match twice: they are merged, and a match cannot span two of them
    # because the margins exceed the longest entity.
    for start, end in windows:
        yield from pattern.finditer(text, start, end)


def _email_spans(text: str, windows: Windows) -> Iterator[tuple[int, int]]:
    for m in _finditer(_EMAIL, text, windows):
        local = m.group(0).split("@", 1)[0].lower()
        if local in _ROLE_LOCAL_PARTS or _RESERVED_DOMAIN.search(m.group(1)):
            continue
        token_start = max(text.rfind(" ", 0, m.start()), text.rfind("\n", 0, m.start())) + 1
        if "://" in text[token_start : m.start()]:
            continue  # the user:password@host of a URL, not an address
        yield m.span()


def _phone_spans(text: str, windows: Windows) -> Iterator[tuple[int, int]]:
    for m in _finditer(_PHONE, text, windows):
        if 9 <= sum(ch.isdigit() for ch in m.group(0)) <= 15:
            yield m.span()


def _card_spans(text: str, windows: Windows) -> Iterator[tuple[int, int]]:
    for m in _finditer(_CARD, text, windows):
        digits = re.sub(r"[ -]", "", m.group(0))
        if 13 <= len(digits) <= 19 and card_brand_prefix(digits) and luhn_valid(digits):
            yield m.span()


def _iban_spans(text: str, windows: Windows) -> Iterator[tuple[int, int]]:
    for m in _finditer(_IBAN, text, windows):
        country = m.group(1).upper()
        length = IBAN_LENGTHS.get(country)
        if length is None:
            continue
        # The pattern may run into the next word ("... 3000 is mine"): keep exactly the
        # country's length of characters and end the span there.
        needed, end = length - 4, m.start(3)
        body = []
        while needed and end < m.end():
            ch = text[end]
            end += 1
            if ch != " ":
                body.append(ch)
                needed -= 1
        if needed == 0 and iban_valid((country + m.group(2) + "".join(body)).upper()):
            yield m.start(), end


def _national_id_spans(text: str, windows: Windows) -> Iterator[tuple[int, int]]:
    for m in _finditer(_SSN, text, windows):
        yield m.span(1) if m.group(1) else m.span()
    for m in _finditer(_NINO, text, windows):
        yield m.span()
    for m in _finditer(_DNI, text, windows):
        if _dni_valid(m):
            yield m.span()
    for m in _CODICE_FISCALE.finditer(text):  # its digits come in pairs: no digit run to anchor on
        if m.start() == 0 or not text[m.start() - 1].isalnum():  # NOTE: no leading \b keeps the scan fast
            yield m.span()
    for m in _finditer(_AADHAAR, text, windows):
        if verhoeff_valid(m.group(0).replace(" ", "")):
            yield m.span()


_FINDERS: dict[str, Callable[[str, Windows], Iterator[tuple[int, int]]]] = {
    "email": _email_spans,
    "phone": _phone_spans,
    "payment_card": _card_spans,
    "national_id": _national_id_spans,
    "iban": _iban_spans,
}


class PersonalDataRail:
    """Finds personal data and masks or blocks it, per entity.

    Args:
        entities: Entity name to action (``mask`` or ``block``); entities left out are not checked.
    """

    name = "personal_data"

    def __init__(self, entities: Mapping[str, FindingAction]) -> None:
        unknown = set(entities) - set(ENTITIES)
        if unknown:
            raise ValueError(f"unknown personal data entities {sorted(unknown)}; known: {list(ENTITIES)}")
        self._entities = dict(entities)

    def categories(self) -> Sequence[str]:
        """The one category this rail flags."""
        return (CATEGORY,)

    def scan(self, text: str) -> list[Finding]:
        """Every entity found, with its span; a card number is never also reported as a phone."""
        found: list[Finding] = []
        taken: list[tuple[int, int]] = []
        numeric = numeric_windows(text)
        # NOTE: order matters: checksum-confirmed entities claim their digits before phones do.
        for entity in ("payment_card", "iban", "national_id", "email", "phone"):
            action = self._entities.get(entity)
            if action is None:
                continue
            windows = email_windows(text) if entity == "email" else numeric
            for start, end in _FINDERS[entity](text, windows):
                if any(start < e and s < end for s, e in taken):
                    continue
                taken.append((start, end))
                found.append(Finding(self.name, CATEGORY, entity, action, start, end, REPLACEMENTS[entity]))
        found.sort(key=lambda f: f.start)
        return found
