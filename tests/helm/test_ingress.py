"""templates/ingress.yaml: the optional Ingress for the API."""

from __future__ import annotations

from .conftest import FULLNAME, find, one, render


def test_off_by_default():
    assert not find(render(), "Ingress")


def test_routes_the_host_to_the_api_service_with_tls():
    ingress = one(render("full"), "Ingress")
    spec = ingress["spec"]
    assert spec["ingressClassName"] == "nginx"
    assert spec["tls"] == [{"hosts": ["llm.example.com"], "secretName": "llm-tls"}]
    (rule,) = spec["rules"]
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert rule["host"] == "llm.example.com"
    assert backend == {"name": f"{FULLNAME}-api", "port": {"number": 8000}}
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "600"
