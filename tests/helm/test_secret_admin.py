"""templates/secret-admin.yaml: the admin token of the /admin endpoints."""

from __future__ import annotations

import base64

from .conftest import FULLNAME, find, one, render


def test_generated_once_and_kept():
    secret = one(render(), "Secret", f"{FULLNAME}-admin")
    token = base64.b64decode(secret["data"]["token"]).decode()
    assert len(token) == 40 and token.isalnum()
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_an_existing_secret_replaces_it():
    assert not find(render("full"), "Secret", f"{FULLNAME}-admin")
