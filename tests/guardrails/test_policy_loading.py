"""Policies load at startup; a broken one fails with a message that names it and the problem."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from guardrails.policy import PACKAGED_POLICIES, PolicyError, PolicySet, UnknownPolicyError, load_policies, load_policy
from guardrails.policy_settings import GUARDRAIL_SYSTEM_PROMPT


def test_packaged_policies_load(policies):
    assert policies.names() == ["default", "permissive", "strict"]
    default, strict = policies.get("default"), policies.get("strict")
    assert [r.name for r in default.input_rails] == ["personal_data", "secrets", "prompt_injection", "classifier", "harmful_request", "denied_terms"]
    assert [r.name for r in default.output_rails] == ["personal_data", "secrets", "code_injection", "denied_terms"]
    assert not default.needs_llm and strict.needs_llm
    assert [r.name for r in strict.input_rails][-1] == "self_check_input"
    assert strict.rails("output")[-1].settings.on_error == "closed"
    assert strict.rails("input")[-1].settings.on_error == "closed"


def test_system_prompt_is_a_policy_switch(policies):
    assert policies.get("default").system_prompt is None
    assert policies.get("strict").system_prompt == GUARDRAIL_SYSTEM_PROMPT
    assert policies.get("strict").info().system_prompt == GUARDRAIL_SYSTEM_PROMPT


def test_default_and_unknown_policy(policies):
    assert policies.get(None).name == "default"
    with pytest.raises(UnknownPolicyError):
        policies.get("nope")
    with pytest.raises(PolicyError, match="default policy 'nope'"):
        PolicySet({p.name: p for p in policies}, "nope")


def copy_policy(tmp_path: Path, name: str = "default") -> Path:
    target = tmp_path / name
    shutil.copytree(PACKAGED_POLICIES / name, target)
    return target


def test_version_is_a_hash_of_the_files(tmp_path, policies):
    path = copy_policy(tmp_path)
    first = load_policy(path).version
    assert first == policies.get("default").version  # same files, same version
    (path / "config.yml").write_text((path / "config.yml").read_text() + "\n# a comment\n")
    assert load_policy(path).version != first


def test_every_policy_shares_one_colang_file_and_its_version_covers_it(tmp_path, policies, monkeypatch):
    import guardrails.policy as policy_module

    assert not list(PACKAGED_POLICIES.glob("*/*.co"))  # written once, in guardrails/colang/
    for policy in policies:
        defined = {f.get("id") for f in policy.config.flows if isinstance(f, dict)}
        assert "secrets input" in defined and "personal data output" in defined, policy.name
    path = copy_policy(tmp_path)
    first = load_policy(path).version
    shared = tmp_path / "shared.co"
    shared.write_text(policy_module.SHARED_COLANG.read_text() + "\n# a comment\n")
    monkeypatch.setattr(policy_module, "SHARED_COLANG", shared)
    assert load_policy(path).version != first


def test_a_policys_own_flow_wins_over_the_shared_one(tmp_path):
    path = copy_policy(tmp_path)
    (path / "own.co").write_text(
        'define bot refuse to respond\n  "No."\n\ndefine subflow secrets input\n  bot refuse to respond\n  stop\n'
    )
    config = load_policy(path).config
    secrets = [f for f in config.flows if isinstance(f, dict) and f.get("id") == "secrets input"]
    assert len(secrets) == 1 and config.bot_messages["refuse to respond"] == ["No."]


def edit(path: Path, old: str, new: str) -> None:
    config = path / "config.yml"
    text = config.read_text()
    assert old in text
    config.write_text(text.replace(old, new))


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("      - secrets input\n", "      - secrets input\n      - no such flow\n", "no surface named 'no such flow'"),
        ("      - secrets input\n", "      - secrets input\n      - secrets output\n",
         "is a output rail, listed under input"),
        ("        action: block\n        topics:", "        action: delete\n        topics:",
         "invalid custom_data.mistral_serve.rails.denied_terms: action: Input should be 'block' or 'mask'"),
        ("email: mask,", "email: mask, passport: mask,", "unknown personal data entities"),
        ("    guardrail_system_prompt: false\n", "    guardrail_system_prompt: false\n    colour: blue\n", "colour"),
        ("      secrets:\n", "      self_check_input:\n        on_error: open\n      secrets:\n",
         "none of its flows runs"),
        ("injections: [markup, ssti]", "injections: [markup, nope]", "YARA rule set 'nope' not found"),
        ("rails:\n  config:", "rails:\n  output: [oops\n  config:", "NeMo Guardrails cannot load it"),
        ("      - prompt injection input\n", "      - prompt injection input\n      - jailbreak detection heuristics\n",
         "gpt2-large"),
        ("      - prompt injection input\n", "      - prompt injection input\n      - self check input\n",
         "Missing a `self_check_input` prompt template"),
    ],
)
def test_broken_policy_fails_with_a_clear_message(tmp_path, old, new, message):
    path = copy_policy(tmp_path)
    edit(path, old, new)
    with pytest.raises(PolicyError, match=message) as error:
        load_policy(path)
    assert "policy 'default'" in str(error.value)


def test_self_check_needs_a_model(tmp_path):
    path = copy_policy(tmp_path, "strict")
    config = path / "config.yml"
    text = config.read_text()
    config.write_text(text[text.index("rails:"):])  # drop `models:`
    with pytest.raises(PolicyError, match="no `main` model"):
        load_policy(path)


def test_custom_flow_missing_from_colang(tmp_path, monkeypatch):
    import guardrails.policy as policy_module

    path = copy_policy(tmp_path)
    colang = tmp_path / "shared.co"
    colang.write_text(policy_module.SHARED_COLANG.read_text().replace(
        "define subflow secrets input", "define subflow secrets inbound"))
    monkeypatch.setattr(policy_module, "SHARED_COLANG", colang)
    with pytest.raises(PolicyError, match="'secrets input' is listed but not defined"):
        load_policy(path)


def test_stream_first_is_refused(tmp_path):
    path = copy_policy(tmp_path)
    edit(path, "  output:\n    flows:", "  output:\n    streaming:\n      enabled: true\n    flows:")
    with pytest.raises(PolicyError, match="stream_first"):
        load_policy(path)


def test_jailbreak_heuristics_with_an_endpoint_is_accepted(tmp_path):
    path = copy_policy(tmp_path)
    flow = "      - prompt injection input\n"
    edit(path, flow, flow + "      - jailbreak detection heuristics\n")
    endpoint = "    jailbreak_detection:\n      server_endpoint: http://127.0.0.1:9/heuristics\n"
    edit(path, "rails:\n  config:\n", "rails:\n  config:\n" + endpoint)
    policy = load_policy(path)
    assert "jailbreak_detection_heuristics" in [r.name for r in policy.input_rails]


def test_load_policies_errors(tmp_path):
    with pytest.raises(PolicyError, match="does not exist"):
        load_policies(tmp_path / "missing")
    with pytest.raises(PolicyError, match="no policies"):
        load_policies(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(PolicyError, match="has no config.yml"):
        load_policies(tmp_path)
