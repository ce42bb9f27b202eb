"""The Ray Serve config file of a deployment config (library function shared by the CLI, the
cluster tools and the chart tests)."""

from __future__ import annotations

from serve.config import load_config, packaged_config_path
from serve.serve_config import ray_serve_config


def test_the_deployment_config_travels_inline_in_the_application_args():
    config = load_config(packaged_config_path("local"))
    file = ray_serve_config(config)
    assert file["http_options"] == {"host": config.http.host, "port": config.http.port}
    (app,) = file["applications"]
    assert app["import_path"] == "serve.app:build_app" and app["route_prefix"] == "/"
    assert app["name"] == config.name and "http" not in app["args"]
    assert app["args"]["model"] == config.model.model_dump(mode="json")
