"""The rendered serveConfigV2: Ray Serve's config shape, a valid AppConfig, importable paths."""

from __future__ import annotations

import importlib

from serve.config import AppConfig, load_config, packaged_config_path
from serve.serve_config import NOT_IN_ARGS, ray_serve_config

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


def test_in_place_options_travel_outside_the_args(value_set):
    """Ray hashes args into the code version: replica counts there would restart every replica."""
    from ray.serve.schema import ServeApplicationSchema

    (app,) = serve_config(render(value_set))["applications"]
    for section in ("engine", "gateway", "moderation"):
        assert "deployment" not in app["args"].get(section, {})
    assert not set(app["args"].get("logging", {})) & NOT_IN_ARGS["logging"]
    names = [d["name"] for d in app["deployments"]]
    assert names[:2] == ["Gateway", "Engine"] and set(names) <= {"Gateway", "Engine", "Moderation"}
    ServeApplicationSchema.model_validate(app)  # Ray's own schema of an application


def test_default_values_are_the_shipped_mistral_7b_config():
    """The chart's defaults and serve/configs/mistral-7b.yaml describe the same deployment (but for
    the chart's placement of Gateway replicas on gateway-hosting worker groups)."""
    (app,) = serve_config(render("default"))["applications"]
    expected = ray_serve_config(load_config(packaged_config_path("mistral-7b")))["applications"][0]
    gateway = {d["name"]: d for d in app["deployments"]}["Gateway"]
    assert gateway["ray_actor_options"].pop("resources") == {"mistral_serve_gateway": 1}
    assert AppConfig.model_validate(app["args"]) == AppConfig.model_validate(expected["args"])
    assert app["import_path"] == expected["import_path"]
    assert app["deployments"] == expected["deployments"]  # the derived numbers included
    assert app["logging_config"] == expected["logging_config"]


def test_tiny_cpu_values_are_the_local_config():
    (app,) = serve_config(render("tiny-cpu"))["applications"]
    local = load_config(packaged_config_path("local"))
    rendered = AppConfig.model_validate(app["args"])
    expected = ray_serve_config(local)["applications"][0]
    assert rendered.engine.model_dump(exclude={"deployment"}) == local.engine.model_dump(exclude={"deployment"})
    assert rendered.model == local.model
    app["deployments"][0]["ray_actor_options"].pop("resources")  # the chart's gateway placement
    assert app["deployments"][:2] == expected["deployments"][:2]  # Gateway and Engine (the values mirror those)


def test_autoscaling_toggle_and_custom_resources_reach_the_deployments():
    (app,) = serve_config(render("fixed"))["applications"]
    deployments = {d["name"]: d for d in app["deployments"]}
    engine = deployments["Engine"]
    assert "autoscaling_config" not in engine and engine["num_replicas"] == 4
    assert engine["graceful_shutdown_timeout_s"] == 60
    assert deployments["Gateway"]["ray_actor_options"]["resources"] == {"accelerator_type:none": 0.001,
                                                                        "mistral_serve_gateway": 1}
    assert app["args"]["cache"]["enabled"] is False


def test_moderation_options_reach_the_args():
    (app,) = serve_config(render("full"))["applications"]
    moderation = AppConfig.model_validate(app["args"]).moderation
    assert (moderation.default_policy, moderation.audit_include_text) == ("strict", True)
    entry = {d["name"]: d for d in app["deployments"]}["Moderation"]
    # numReplicas: 2 is set but autoscaling stays on, and autoscaling replaces a fixed count.
    assert "num_replicas" not in entry and entry["autoscaling_config"]["max_replicas"] == 4
    assert str(moderation.policies_dir) == "/etc/mistral-serve/policies"  # custom policies given
    (app,) = serve_config(render("default"))["applications"]
    assert app["args"]["moderation"]["policies_dir"] is None  # the packaged policies


def test_secrets_never_travel_in_the_serve_config(value_set):
    text = one(render(value_set), "RayService")["spec"]["serveConfigV2"]
    assert "redis://" not in text and "admin" not in text.lower() and "password" not in text.lower()
