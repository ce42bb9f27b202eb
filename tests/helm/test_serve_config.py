"""The rendered serveConfigV2: Ray Serve's config shape, a valid AppConfig, importable paths."""

from __future__ import annotations

import importlib

from serve.serve_config import ray_serve_config
from serve.config import AppConfig, load_config, packaged_config_path

from .conftest import one, render, serve_config


def test_serve_config_parses_and_every_import_path_exists(value_set):
    config = serve_config(render(value_set))
    assert config["http_options"] == {"host": "0.0.0.0", "port": 8000}
    for app in config["applications"]:
        module, _, attribute = app["import_path"].partition(":")
        assert callable(getattr(importlib.import_module(module), attribute))
        assert app["route_prefix"] == "/"


def test_args_are_a_valid_deployment_config(value_set):
    (app,) = serve_config(render(value_set))["applications"]
    config = AppConfig.model_validate(app["args"])
    assert config.name == app["name"]


def test_default_values_are_the_shipped_mistral_7b_config():
    """The chart's defaults and serve/configs/mistral-7b.yaml describe the same deployment (but for
    the chart's placement of Gateway replicas on gateway-hosting worker groups)."""
    (app,) = serve_config(render("default"))["applications"]
    expected = ray_serve_config(load_config(packaged_config_path("mistral-7b")))["applications"][0]
    assert app["args"]["gateway"]["deployment"]["resources"].pop("mistral_serve_gateway") == 1
    assert AppConfig.model_validate(app["args"]) == AppConfig.model_validate(expected["args"])
    assert app["import_path"] == expected["import_path"]


def test_tiny_cpu_values_are_the_local_config():
    (app,) = serve_config(render("tiny-cpu"))["applications"]
    local = load_config(packaged_config_path("local"))
    rendered = AppConfig.model_validate(app["args"])
    assert rendered.engine == local.engine and rendered.model == local.model
    assert rendered.gateway.deployment.num_cpus == local.gateway.deployment.num_cpus


def test_autoscaling_toggle_and_custom_resources_reach_the_args():
    (app,) = serve_config(render("fixed"))["applications"]
    engine = app["args"]["engine"]["deployment"]
    assert "autoscaling" not in engine and engine["num_replicas"] == 4
    assert app["args"]["gateway"]["deployment"]["resources"] == {"accelerator_type:none": 0.001, "mistral_serve_gateway": 1}
    assert app["args"]["cache"]["enabled"] is False


def test_moderation_options_reach_the_args():
    (app,) = serve_config(render("full"))["applications"]
    moderation = AppConfig.model_validate(app["args"]).moderation
    assert (moderation.default_policy, moderation.audit_include_text) == ("strict", True)
    assert moderation.deployment.num_replicas == 2
    assert str(moderation.policies_dir) == "/etc/mistral-serve/policies"  # custom policies given
    (app,) = serve_config(render("default"))["applications"]
    assert app["args"]["moderation"]["policies_dir"] is None  # the packaged policies


def test_secrets_never_travel_in_the_serve_config(value_set):
    text = one(render(value_set), "RayService")["spec"]["serveConfigV2"]
    assert "redis://" not in text and "admin" not in text.lower() and "password" not in text.lower()
