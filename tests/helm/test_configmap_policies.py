"""templates/configmap-policies.yaml: custom moderation policies for the Moderation replicas."""

from __future__ import annotations

from .conftest import FULLNAME, one, ray_pods, render, serve_config


def test_values_policies_become_files_at_their_paths():
    docs = render("full")
    data = one(docs, "ConfigMap", f"{FULLNAME}-policies")["data"]
    assert data["strict__config.yml"] == "models: []\n"
    assert data["strict__rails.co"] == "define flow check\n  pass\n"
    assert data["strict__yara__markup.yara"] == "rule x {}\n"
    for pod in ray_pods(docs).values():
        (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == "policies"]
        items = {i["key"]: i["path"] for i in volume["configMap"]["items"]}
        assert items["strict__yara__markup.yara"] == "strict/yara/markup.yara"
        assert items["strict__config.yml"] == "strict/config.yml"


def test_custom_policies_point_the_moderation_config_at_the_mount():
    (app,) = serve_config(render("full"))["applications"]
    assert app["args"]["moderation"]["policies_dir"] == "/etc/mistral-serve/policies"
    (app,) = serve_config(render("default"))["applications"]
    assert app["args"]["moderation"]["policies_dir"] is None  # packaged policies


def test_present_even_without_policies():
    data = one(render(), "ConfigMap", f"{FULLNAME}-policies")["data"]
    assert list(data) == ["README"]
