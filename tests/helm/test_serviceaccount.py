"""templates/serviceaccount.yaml: the pods' ServiceAccount (no API token mounted)."""

from __future__ import annotations

from .conftest import FULLNAME, find, one, ray_pods, render


def test_created_without_token_automount():
    account = one(render(), "ServiceAccount")
    assert account["metadata"]["name"] == FULLNAME and account["automountServiceAccountToken"] is False
    assert all(p["spec"]["serviceAccountName"] == FULLNAME for p in ray_pods(render()).values())


def test_an_existing_account_can_be_named():
    docs = render("fixed")
    assert not find(docs, "ServiceAccount")
    assert all(p["spec"]["serviceAccountName"] == "ray" for p in ray_pods(docs).values())
