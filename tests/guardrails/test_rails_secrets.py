"""The secrets rail: provider keys, private keys, tokens and assignments, not code that handles them."""

from __future__ import annotations

import pytest

from guardrails.rails.secrets import SecretsRail, shannon_entropy

RAIL = SecretsRail()
GITHUB = "ghp_" + "Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8Qr9St0Uv1Wx2"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("key AKIAIOSFODNN7EXAMPLE in eu-west-1", "aws_access_key"),
        (f"token {GITHUB}", "github_token"),
        ("OPENAI_API_KEY=sk-proj-Xk2mP9vL3qR8tY6wZ1aB4cD7eF0gH5jK2mN8pQ3r", "openai_key"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----", "private_key"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk", "private_key"),
        ("xoxb-2048193620-3091827465-AbCdEfGhIjKl", "slack_token"),
        ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "stripe_key"),
        ("AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY", "google_api_key"),
        ("hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", "huggingface_token"),
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "jwt"),
        ("Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123456789", "bearer_token"),
        ('db_password = "Xk9#mP2$vL8q"', "assigned_secret"),
        ("client_secret: 8f14e45fceea167a5a36dedd4bea2543b9", "assigned_secret"),
        ("postgres://admin:Tr0ub4dor&3x@db.prod.internal:5432/billing", "url_credentials"),
    ],
)
def test_finds_credentials(text, kind):
    assert kind in [f.kind for f in RAIL.scan(text)]


@pytest.mark.parametrize(
    "text",
    [
        "password = getpass.getpass()",
        "API_KEY=<your-key-here>",
        "secret_key = os.environ['SECRET_KEY']",
        "token = generate_token(user)",
        "postgres://user:password@localhost:5432/db",
        "sk-learn is not scikit-learn",
        "Add the header `Authorization: Bearer <token>`",
        "the key insight is that passwords should be hashed",
    ],
)
def test_ignores_code_and_placeholders(text):
    assert RAIL.scan(text) == []


def test_mask_action_and_generic_switch():
    masked = SecretsRail(action="mask").scan("use AKIAIOSFODNN7EXAMPLE")
    assert [(f.action, f.replacement) for f in masked] == [("mask", "[SECRET]")]
    assert SecretsRail(generic=False).scan('pwd = "Xk9#mP2$vL8q"') == []


def test_entropy():
    assert shannon_entropy("aaaa") == 0 and shannon_entropy("abcd") == 2
