"""templates/configmap-dashboards.yaml: the generated dashboards as ConfigMaps for Grafana's sidecar."""

from __future__ import annotations

import json

from ops import dashboards

from .conftest import FULLNAME, find, render


def test_off_by_default():
    assert not [c for c in find(render(), "ConfigMap") if "dashboard" in c["metadata"]["name"]]


def test_one_labelled_config_map_per_generated_dashboard():
    maps = {c["metadata"]["name"]: c for c in find(render("full"), "ConfigMap") if "dashboard" in c["metadata"]["name"]}
    assert set(maps) == {f"{FULLNAME}-dashboard-{uid}" for uid in dashboards.DASHBOARDS}
    for uid in dashboards.DASHBOARDS:
        config_map = maps[f"{FULLNAME}-dashboard-{uid}"]
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert config_map["metadata"]["annotations"]["grafana_folder"] == "mistral-serve"
        assert json.loads(config_map["data"][f"{uid}.json"]) == dashboards.build(uid)
