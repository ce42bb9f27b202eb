"""The ``/admin`` API on the real Redis: the admin token, keys, usage, and clear 4xx/503s."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from serve.gateway.admin import create_admin_router
from serve.gateway.error_handlers import install_error_handlers

TOKEN = "admin-secret-token"


@pytest.fixture
async def admin(gate):
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(create_admin_router(gate, TOKEN))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test",
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client


async def test_the_admin_token_is_required(admin):
    for headers in ({"Authorization": "Bearer wrong"}, {"Authorization": ""}):
        response = await admin.get("/admin/keys", headers=headers)
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"


async def test_keys_are_created_listed_and_revoked_without_showing_the_key_again(admin):
    created = await admin.post("/admin/keys", json={"team": "admin-team", "rpm": 5, "policy": "strict"})
    assert created.status_code == 201
    body = created.json()
    assert body["key"] and body["team"] == "admin-team" and "sha256" not in body
    listed = (await admin.get("/admin/keys", params={"team": "admin-team"})).json()["data"]
    assert [k["key_id"] for k in listed] == [body["key_id"]] and "key" not in listed[0]
    assert (await admin.delete(f"/admin/keys/{body['key_id']}")).status_code == 200
    missing = await admin.delete("/admin/keys/nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "key_not_found"


async def test_bad_input_is_a_clear_400(admin):
    bad_team = await admin.post("/admin/keys", json={"team": "Bad Team!"})
    assert bad_team.status_code == 400 and bad_team.json()["error"]["param"] == "team"
    unknown_field = await admin.post("/admin/keys", json={"team": "t", "rmp": 1})
    assert unknown_field.status_code == 400


async def test_usage_reports_from_a_day(admin):
    await admin.post("/admin/keys", json={"team": "usage-team"})
    report = (await admin.get("/admin/usage", params={"team": "usage-team", "since": "2026-01-01"})).json()
    assert report["since"] == "2026-01-01" and isinstance(report["data"], list)
    future = await admin.get("/admin/usage", params={"since": "2999-01-01"})
    assert future.status_code == 400 and future.json()["error"]["param"] == "since"
