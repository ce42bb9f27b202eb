"""templates/pvc-model-cache.yaml: the optional model-cache claim, mounted at HF_HOME."""

from __future__ import annotations

from .conftest import FULLNAME, find, one, ray_pods, render


def test_off_by_default():
    docs = render()
    assert not find(docs, "PersistentVolumeClaim")
    for pod in ray_pods(docs).values():
        assert "model-cache" not in {v["name"] for v in pod["spec"]["volumes"]}


def test_created_claim_is_shared_kept_and_mounted_where_hf_home_points():
    docs = render("full")
    claim = one(docs, "PersistentVolumeClaim", f"{FULLNAME}-model-cache")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["spec"]["storageClassName"] == "shared-nfs"
    assert claim["spec"]["resources"]["requests"]["storage"] == "200Gi"
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    for name, pod in ray_pods(docs).items():
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        assert volumes["model-cache"]["persistentVolumeClaim"] == {"claimName": f"{FULLNAME}-model-cache"}
        ray = pod["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in ray["env"]}
        assert {"name": "model-cache", "mountPath": env["HF_HOME"]} in ray["volumeMounts"], name


def test_an_existing_claim_is_mounted_instead():
    docs = render("default", "huggingFace.modelCache.enabled=true", "huggingFace.modelCache.existingClaim=hf-cache")
    assert not find(docs, "PersistentVolumeClaim")
    for pod in ray_pods(docs).values():
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        assert volumes["model-cache"]["persistentVolumeClaim"] == {"claimName": "hf-cache"}
