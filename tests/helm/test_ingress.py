"""templates/ingress.yaml: the optional public Ingress (/v1 only, body-size limit) and the
optional internal /admin Ingress."""

from __future__ import annotations

import pytest

from .conftest import FULLNAME, RenderError, find, one, render, render_text


def _paths(ingress):
    (rule,) = ingress["spec"]["rules"]
    return [p["path"] for p in rule["http"]["paths"]]


def test_off_by_default():
    assert not find(render(), "Ingress")


def test_routes_the_host_to_the_api_service_with_tls():
    ingress = one(render("full"), "Ingress", FULLNAME)
    spec = ingress["spec"]
    assert spec["ingressClassName"] == "nginx"
    assert spec["tls"] == [{"hosts": ["llm.example.com"], "secretName": "llm-tls"}]
    (rule,) = spec["rules"]
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert rule["host"] == "llm.example.com"
    assert backend == {"name": f"{FULLNAME}-api", "port": {"number": 8000}}
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "600"


def test_publishes_only_the_openai_api_never_admin_or_docs():
    ingress = one(render("default", "api.ingress.enabled=true"), "Ingress")
    assert _paths(ingress) == ["/v1"]
    assert all(p["pathType"] == "Prefix" for p in ingress["spec"]["rules"][0]["http"]["paths"])


@pytest.mark.parametrize("path", ["/", "/admin", "/admin/keys", "/docs", "/openapi.json"])
def test_a_path_that_would_publish_admin_or_docs_fails(path):
    with pytest.raises(RenderError, match="would publish /admin"):
        render_text("default", "api.ingress.enabled=true", f"api.ingress.paths={{{path}}}")


def test_body_size_limit_matches_the_app_and_is_configurable():
    ingress = one(render("default", "api.ingress.enabled=true"), "Ingress")
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"] == "8m"
    small = one(render("default", "api.ingress.enabled=true", "api.ingress.maxBodyBytes=65536"), "Ingress")
    assert small["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"] == "64k"
    odd = one(render("default", "api.ingress.enabled=true", "api.ingress.maxBodyBytes=1000"), "Ingress")
    assert odd["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"] == "1000"
    other = one(render("default", "api.ingress.enabled=true", "api.ingress.controller=none"), "Ingress")
    assert "nginx.ingress.kubernetes.io/proxy-body-size" not in (other["metadata"].get("annotations") or {})


def test_admin_ingress_is_separate_internal_and_off_by_default():
    assert not find(render("default", "api.ingress.enabled=true"), "Ingress", f"{FULLNAME}-admin")
    docs = render("full")
    admin = one(docs, "Ingress", f"{FULLNAME}-admin")
    assert admin["spec"]["ingressClassName"] == "internal-nginx"
    assert admin["spec"]["rules"][0]["host"] == "llm-admin.corp.internal"
    assert _paths(admin) == ["/admin"]
    assert "/admin" not in _paths(one(docs, "Ingress", FULLNAME))


@pytest.mark.parametrize("sets, message", [
    (("api.adminIngress.enabled=true",), "internal-only IngressClass"),
    (("api.ingress.enabled=true", "api.ingress.className=nginx", "api.adminIngress.enabled=true",
      "api.adminIngress.className=nginx"), "must differ from api.ingress.className"),
])
def test_admin_ingress_misconfigurations_fail(sets, message):
    with pytest.raises(RenderError, match=message):
        render_text("default", *sets)
