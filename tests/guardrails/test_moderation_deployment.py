"""The Moderation deployment's class, constructed in-process (the Ray-served one is in tests/e2e)."""

from __future__ import annotations

import shutil

import pytest

from guardrails.deployment import ModerationDeployment
from guardrails.policy import PACKAGED_POLICIES, PolicyError
from serve.config import ModerationConfig

Deployment = ModerationDeployment.func_or_class  # the plain class under Ray's decorator


@pytest.fixture
def offline_dir(tmp_path):
    for name in ("default", "permissive"):
        shutil.copytree(PACKAGED_POLICIES / name, tmp_path / name)
    return tmp_path


async def test_methods_return_verdicts_and_infos(offline_dir):
    deployment = Deployment(ModerationConfig(policies_dir=offline_dir))
    assert (await deployment.check_input("mail a.b@gmail.com")).text == "mail [EMAIL]"
    assert [v.action for v in await deployment.check_inputs(["x", "AKIAIOSFODNN7EXAMPLE"], "permissive")] == [
        "allowed", "blocked"]
    assert (await deployment.check_output("<script>x</script>", request_id="r", team="t")).rail == "code_injection"
    assert not hasattr(deployment, "moderate")  # verdicts only: the gateway builds /v1/moderations
    infos = deployment.policies()
    assert set(infos) == {"default", "permissive"} and infos["default"].stream.hold_chars == 64


async def test_records_into_the_injected_metrics(offline_dir):
    from guardrails.metrics import CountingMetrics

    metrics = CountingMetrics()
    deployment = Deployment(ModerationConfig(policies_dir=offline_dir), metrics=lambda: metrics)
    await deployment.check_input("AKIAIOSFODNN7EXAMPLE")
    assert metrics.value("verdicts", direction="input", rail="secrets", action="blocked", policy="default") == 1


def test_model_policies_without_an_engine_fail_startup():
    with pytest.raises(PolicyError, match=r"\['strict'\] use model rails"):
        Deployment(ModerationConfig())


def test_config_is_strict_and_sizes_the_deployment():
    config = ModerationConfig()
    assert config.default_max_ongoing() == 64 and config.deployment.num_cpus == 0.5
    options = config.deployment.serve_options(config.default_max_ongoing())
    assert options["max_ongoing_requests"] == 64
    with pytest.raises(ValueError):
        ModerationConfig(polices_dir="typo")
