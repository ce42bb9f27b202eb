"""The deployment config and its packaged files."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from serve.config import DEFAULT_MODEL_ID, AppConfig, load_config, packaged_config_path


@pytest.mark.parametrize("name", ["local", "mistral-7b"])
def test_packaged_configs_are_valid(name):
    config = load_config(packaged_config_path(name))
    assert config.engine.deployment.serve_options(config.engine.default_max_ongoing())["max_ongoing_requests"] >= (
        config.engine.max_batch_size
    )


def test_production_config_serves_mistral_7b_on_a_gpu():
    config = load_config(packaged_config_path("mistral-7b"))
    assert config.model.id == DEFAULT_MODEL_ID and not config.model.tiny
    assert config.engine.deployment.num_gpus == 1


def test_serve_options_map_autoscaling_or_fixed_replicas():
    config = load_config(packaged_config_path("mistral-7b"))
    options = config.engine.deployment.serve_options(64)
    assert options["autoscaling_config"]["max_replicas"] == 4 and "num_replicas" not in options
    assert options["ray_actor_options"] == {"num_cpus": 4, "num_gpus": 1}
    local = load_config(packaged_config_path("local")).engine.deployment.serve_options(32)
    assert local["num_replicas"] == 1 and "autoscaling_config" not in local


def test_default_max_ongoing_is_derived_from_the_batch():
    config = AppConfig.model_validate({"engine": {"max_batch_size": 24}})
    assert config.engine.deployment.serve_options(config.engine.default_max_ongoing())["max_ongoing_requests"] == 48


@pytest.mark.parametrize(
    "data", [{"engine": {"max_batch_sise": 4}}, {"engine": {"deployment": {"autoscaling": {"min_replicas": 3, "max_replicas": 1}}}},
             {"engine": {"dtype": "int3"}}],
)
def test_typos_and_bad_values_fail_loudly(data):
    with pytest.raises(ValidationError):
        AppConfig.model_validate(data)
