"""Autoscaling, queue bounds and backpressure: the numbers each deployment gets from the config."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from ray.serve.config import AutoscalingConfig as RayAutoscalingConfig
from ray.serve.config import BackpressureConfig as RayBackpressureConfig

from serve.config import AppConfig, load_config, packaged_config_path


def engine_options(data: dict) -> dict:
    config = AppConfig.model_validate(data)
    return config.engine.deployment.serve_options(config.engine.default_max_ongoing())


def test_engine_numbers_derive_from_its_batch():
    options = engine_options({"engine": {"max_batch_size": 32, "deployment": {"autoscaling": {"max_replicas": 4}}}})
    assert options["max_ongoing_requests"] == 64  # a batch running + a batch waiting to join
    assert options["max_queued_requests"] == 32  # one more batch per caller, then refusals
    assert options["autoscaling_config"]["target_ongoing_requests"] == 24  # scale out at 3/4 of a batch
    assert options["autoscaling_config"]["max_replicas"] == 4
    # Ray Serve's own defaults (5 ongoing, target 2) would starve the batch: never used.
    assert options["max_ongoing_requests"] != 5 and options["autoscaling_config"]["target_ongoing_requests"] != 2


def test_explicit_numbers_win_and_minus_one_means_unbounded():
    options = engine_options({"engine": {"deployment": {
        "max_ongoing_requests": 40, "max_queued_requests": -1,
        "autoscaling": {"target_ongoing_requests": 30, "look_back_period_s": 5, "metrics_interval_s": 1}}}})
    assert options["max_ongoing_requests"] == 40 and options["max_queued_requests"] == -1
    autoscaling = options["autoscaling_config"]
    assert autoscaling["target_ongoing_requests"] == 30
    assert autoscaling["look_back_period_s"] == 5 and autoscaling["metrics_interval_s"] == 1


def test_unset_ray_knobs_are_left_to_ray():
    autoscaling = engine_options({"engine": {"deployment": {"autoscaling": {}}}})["autoscaling_config"]
    assert "look_back_period_s" not in autoscaling and "metrics_interval_s" not in autoscaling


def test_a_target_above_the_replica_capacity_is_refused():
    with pytest.raises(ValidationError, match="target_ongoing_requests"):
        AppConfig.model_validate({"engine": {"deployment": {
            "max_ongoing_requests": 8, "autoscaling": {"target_ongoing_requests": 9}}}})


@pytest.mark.parametrize(("status", "retry_after"), [(503, 1), (429, 2.5)])
def test_backpressure_answer_is_a_setting(status, retry_after):
    options = engine_options({"engine": {"deployment": {"backpressure": {"status_code": status,
                                                                         "retry_after_s": retry_after}}}})
    assert options["backpressure_config"] == {"status_code": status, "retry_after_s": retry_after}


def test_backpressure_status_is_503_or_429():
    with pytest.raises(ValidationError):
        AppConfig.model_validate({"engine": {"deployment": {"backpressure": {"status_code": 500}}}})


@pytest.mark.parametrize("name", ["local", "mistral-7b"])
def test_packaged_configs_give_ray_valid_options(name):
    config = load_config(packaged_config_path(name))
    for options in (
        config.engine.deployment.serve_options(config.engine.default_max_ongoing()),
        config.gateway.deployment.serve_options(config.gateway.default_max_ongoing()),
        config.moderation.deployment.serve_options(config.moderation.default_max_ongoing()),
    ):
        RayBackpressureConfig(**options["backpressure_config"])
        if "autoscaling_config" in options:
            ray_config = RayAutoscalingConfig(**options["autoscaling_config"])
            assert ray_config.target_ongoing_requests <= options["max_ongoing_requests"]
        assert options["max_queued_requests"] >= 1  # every tier's queue is bounded


def test_liveness_and_fault_injection_defaults_are_safe():
    engine = AppConfig().engine
    assert engine.fault_injection is False
    assert engine.stall_timeout_s >= 30  # far above any real step of a 7B model
