"""The personal data rail: each entity fires on its positives and stays quiet on look-alikes."""

from __future__ import annotations

import pytest

from guardrails.rails.pii import ENTITIES, PersonalDataRail, iban_valid, luhn_valid, verhoeff_valid

RAIL = PersonalDataRail({e: "mask" for e in ENTITIES})


def kinds(text: str) -> list[tuple[str, str]]:
    return [(f.kind, text[f.start : f.end]) for f in RAIL.scan(text)]


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("write to john.smith@gmail.com today", "email", "john.smith@gmail.com"),
        ("cc: m.rossi+news@acme-corp.it.", "email", "m.rossi+news@acme-corp.it"),
        ("call +44 20 7946 0958 now", "phone", "+44 20 7946 0958"),
        ("her number is (415) 555-2671.", "phone", "(415) 555-2671"),
        ("office 020 7946 0958", "phone", "020 7946 0958"),
        ("mobile 06 12 34 56 78", "phone", "06 12 34 56 78"),
        ("card 4111 1111 1111 1111 declined", "payment_card", "4111 1111 1111 1111"),
        ("amex 378282246310005", "payment_card", "378282246310005"),
        ("mc 5555-5555-5555-4444", "payment_card", "5555-5555-5555-4444"),
        ("IBAN DE89 3704 0044 0532 0130 00 is mine", "iban", "DE89 3704 0044 0532 0130 00"),
        ("to GB82WEST12345698765432.", "iban", "GB82WEST12345698765432"),
        ("ssn 123-45-6789", "national_id", "123-45-6789"),
        ("SSN: 078 05 1120", "national_id", "078 05 1120"),
        ("NINO AB 12 34 56 C", "national_id", "AB 12 34 56 C"),
        ("DNI 12345678Z", "national_id", "12345678Z"),
        ("NIE X1234567L", "national_id", "X1234567L"),
        ("CF RSSMRA85T10A562S", "national_id", "RSSMRA85T10A562S"),
    ],
)
def test_finds_each_entity(text, kind, value):
    assert kinds(text) == [(kind, value)]


@pytest.mark.parametrize(
    "text",
    [
        "alice@example.com is the documented test address",  # RFC 2606
        "clone git@github.com:acme/infra.git",  # role mailbox in an SSH URL
        "postgres://user:pa55word@db.internal:5432/app",  # URL credentials are the secrets rail's
        "card 4111 1111 1111 1112 fails Luhn",
        "order 1234567890123 and timestamp 1700000000000",
        "IBAN DE89 3704 0044 0532 0130 01 has a wrong check digit",
        "DNI 12345678A has the wrong letter",
        "version 10.4.12 on 192.168.100.200 port 8080",
        "released 2024-01-15, build 2024.01.15-3",
        "ISBN 978-3-16-148410-0",
        "revenue 4,111,111 EUR",
        "SSN 000-12-3456 is never issued",
    ],
)
def test_ignores_look_alikes(text):
    assert kinds(text) == []


def test_checksums():
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert iban_valid("DE89370400440532013000") and not iban_valid("DE89370400440532013001")
    assert verhoeff_valid("2363") and not verhoeff_valid("2364")


def test_actions_per_entity_and_unchecked_entities():
    rail = PersonalDataRail({"payment_card": "block", "email": "mask"})
    found = rail.scan("mail a.b@gmail.com card 4111111111111111 phone +44 20 7946 0958")
    assert [(f.kind, f.action, f.replacement) for f in found] == [
        ("email", "mask", "[EMAIL]"), ("payment_card", "block", "[CARD_NUMBER]"),
    ]


def test_unknown_entity_is_refused():
    with pytest.raises(ValueError, match="passport"):
        PersonalDataRail({"passport": "mask"})
