"""templates/podmonitor.yaml: the optional prometheus-operator PodMonitor."""

from __future__ import annotations

from .conftest import find, one, ray_pods, render


def test_off_by_default():
    assert not find(render(), "PodMonitor")


def test_scrapes_the_metrics_and_autoscaler_ports_of_ray_pods():
    docs = render("full")
    monitor = one(docs, "PodMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert [e["port"] for e in monitor["spec"]["podMetricsEndpoints"]] == ["metrics", "autoscaler"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    for pod in ray_pods(docs).values():
        assert selector.items() <= pod["metadata"]["labels"].items()
        assert "metrics" in {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}


def test_every_endpoint_labels_samples_with_the_release():
    for endpoint in one(render("full"), "PodMonitor")["spec"]["podMetricsEndpoints"]:
        assert endpoint["relabelings"] == [{"sourceLabels": ["__meta_kubernetes_pod_label_app_kubernetes_io_instance"],
                                            "targetLabel": "release"}]
