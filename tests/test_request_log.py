"""The SCIM request log answers "why did my Okta sync fail?" in plain words."""

from __future__ import annotations

import pytest

from scim_bridge import create_app

from .conftest import http_client, make_token
from .scimdata import create_user, patch
from .sessionkit import admin_client


def _log(admin) -> list[dict]:
    response = admin.get("/requests", params={"count": 500})
    assert response.status_code == 200, response.text
    return response.json()["requests"]


@pytest.mark.parametrize("make_request,status,reason", [
    (lambda s: s.post("/Users", json={"userName": "dup@example.com"}), 409, "uniqueness"),
    (lambda s: s.get("/Users", params={"filter": 'nope eq "x"'}), 400, "invalid filter"),
    (lambda s: s.get("/Users/missing"), 404, "not found"),
    (lambda s: s.post("/Users", content=b"{oops"), 400, "malformed request"),
])
def test_failures_are_logged_with_their_reason(scim, admin, make_request, status, reason):
    create_user(scim, "dup@example.com")
    make_request(scim)
    entry = _log(admin)[0]
    assert entry["status"] == status
    assert entry["reason"].startswith(reason + ": ")
    assert entry["token_name"] == "okta-prod"
    assert entry["duration_ms"] >= 0 and entry["method"] and entry["path"].startswith("/scim/v2/")


def test_unknown_attribute_in_a_patch_path_is_named(scim, admin):
    user = create_user(scim, "p@example.com")
    scim.patch(f"/Users/{user['id']}", json=patch({"op": "replace", "path": "colour", "value": 1}))
    entry = _log(admin)[0]
    assert entry["status"] == 400
    assert "colour" in entry["reason"]


def test_successes_are_logged_without_a_reason(scim, admin):
    create_user(scim, "ok@example.com")
    entry = _log(admin)[0]
    assert (entry["method"], entry["status"], entry["reason"]) == ("POST", 201, None)


def test_request_bodies_and_secrets_are_never_logged(scim, admin):
    create_user(scim, "secret@example.com", password="hunter2-very-secret")
    assert "hunter2" not in str(_log(admin))


def test_retention_is_bounded_per_tenant(settings):
    app = create_app(settings.with_(request_log_retention=10))
    scim_token = make_token(app, "okta", "scim")
    with http_client(app, scim_token, "/scim/v2") as scim, admin_client(app) as admin:
        for _ in range(120):
            scim.get("/Users")
        assert len(_log(admin)) <= 10
    app.extensions["scim_bridge"].engine.dispose()
