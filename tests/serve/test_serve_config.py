"""The Serve config file: args hold the application's settings, deployments[] what Ray applies in place."""

from __future__ import annotations

import copy

import pytest
from ray.serve._private.deploy_utils import get_app_code_version
from ray.serve.schema import ServeApplicationSchema, ServeDeploySchema

from serve.config import AppConfig, load_config, packaged_config_path
from serve.serve_config import application_args, deployment_options, ray_serve_config


def code_version(serve_config: dict) -> str:
    """Ray's code version of the application: a change replaces every replica."""
    return get_app_code_version(ServeApplicationSchema.model_validate(serve_config["applications"][0]))


@pytest.mark.parametrize("name", ["local", "mistral-7b"])
def test_the_config_is_valid_for_ray_serve(name):
    serve_config = ray_serve_config(load_config(packaged_config_path(name)))
    ServeDeploySchema.model_validate(serve_config)
    (app,) = serve_config["applications"]
    assert [d["name"] for d in app["deployments"]] == ["Gateway", "Engine", "Moderation"]
    assert app["logging_config"] == {"encoding": "JSON", "log_level": "INFO", "enable_access_log": True}


def test_deployment_names_are_the_deployments_own():
    from guardrails.deployment import ModerationDeployment
    from serve.engine.deployment import EngineDeployment
    from serve.gateway.deployment import GatewayDeployment

    names = {d["name"] for d in deployment_options(AppConfig())}
    assert names == {EngineDeployment.name, GatewayDeployment.name, ModerationDeployment.name}


def test_args_leave_out_what_ray_applies_in_place_and_keep_the_rest():
    config = load_config(packaged_config_path("mistral-7b"))
    args = application_args(config)
    assert "http" not in args
    assert all("deployment" not in args[section] for section in ("engine", "gateway", "moderation"))
    assert args["logging"] == {"include_text": False}
    rebuilt = AppConfig.model_validate(args)  # what serve.app.build_app does with them
    assert rebuilt.engine.max_batch_size == config.engine.max_batch_size
    assert rebuilt.model_dump(exclude={"engine", "gateway", "moderation", "http", "logging"}) == config.model_dump(
        exclude={"engine", "gateway", "moderation", "http", "logging"})


def test_replica_bounds_and_logging_keep_ray_s_code_version_and_app_settings_change_it():
    config = load_config(packaged_config_path("mistral-7b"))
    base = code_version(ray_serve_config(config))

    scaled = copy.deepcopy(config)
    scaled.engine.deployment.autoscaling.max_replicas = 16
    scaled.gateway.deployment.num_cpus = 2
    scaled.moderation.deployment.max_ongoing_requests = 8
    scaled.logging.level = "DEBUG"
    assert ray_serve_config(scaled)["applications"][0]["deployments"] != ray_serve_config(config)[
        "applications"][0]["deployments"]
    assert code_version(ray_serve_config(scaled)) == base

    changed = copy.deepcopy(config)
    changed.tenancy.default_rpm = 1
    assert code_version(ray_serve_config(changed)) != base


def test_fixed_and_autoscaled_deployments():
    config = load_config(packaged_config_path("local"))
    gateway, engine, _ = deployment_options(config)
    assert "autoscaling_config" not in gateway and gateway["num_replicas"] == config.gateway.deployment.num_replicas
    assert engine["max_ongoing_requests"] == 2 * config.engine.max_batch_size
    config.engine.deployment.autoscaling = {"min_replicas": 1, "max_replicas": 3}
    _, engine, _ = deployment_options(AppConfig.model_validate(config.model_dump()))
    assert "num_replicas" not in engine
    assert engine["autoscaling_config"]["target_ongoing_requests"] == 0.75 * config.engine.max_batch_size


def test_moderation_off_has_no_moderation_deployment():
    config = AppConfig()
    config.moderation.enabled = False
    assert [d["name"] for d in deployment_options(config)] == ["Gateway", "Engine"]
