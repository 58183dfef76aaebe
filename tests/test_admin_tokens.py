"""A tenant's admin rotates its IdP's token without shell access: list, create (shown once),
revoke; never another tenant's tokens, never a sessions token."""

from __future__ import annotations

import pytest

from .conftest import http_client
from .sessionkit import admin_client


def test_a_created_token_is_shown_once_and_works_at_once(app, admin):
    response = admin.post("/tokens", json={"name": "okta-2027", "scope": "scim"})
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["name"] == "okta-2027" and created["scope"] == "scim"
    assert created["token"].startswith("sb_") and created["revoked_at"] is None
    with http_client(app, created["token"], "/scim/v2") as idp:
        assert idp.get("/Users").status_code == 200
    listed = admin.get("/tokens").json()["tokens"]
    assert [(t["name"], t["scope"]) for t in listed] == [("console", "admin"),
                                                          ("okta-2027", "scim")]
    assert all(set(t) == {"name", "scope", "created_at", "revoked_at"} for t in listed)
    assert created["token"] not in admin.get("/tokens").text


def test_a_revoked_token_is_refused_at_once(app, admin):
    token = admin.post("/tokens", json={"name": "okta-old", "scope": "scim"}).json()["token"]
    response = admin.delete("/tokens/okta-old")
    assert response.status_code == 200, response.text
    assert response.json()["revoked_at"]
    with http_client(app, token, "/scim/v2") as idp:
        assert idp.get("/Users").status_code == 401
    listed = {t["name"]: t for t in admin.get("/tokens").json()["tokens"]}
    assert listed["okta-old"]["revoked_at"] == response.json()["revoked_at"]
    assert admin.delete("/tokens/okta-old").status_code == 200  # idempotent


def test_an_admin_revokes_its_own_token_only_when_it_says_so(admin):
    refused = admin.delete("/tokens/console")
    assert refused.status_code == 409 and "self=true" in refused.text
    assert admin.get("/tokens").status_code == 200
    assert admin.delete("/tokens/console", params={"self": "true"}).status_code == 200
    assert admin.get("/tokens").status_code == 401


def test_an_admin_token_can_mint_another_admin_token(app, admin):
    created = admin.post("/tokens", json={"name": "console-2", "scope": "admin"}).json()
    with http_client(app, created["token"], "/api/v1/admin") as second:
        assert [t["name"] for t in second.get("/tokens").json()["tokens"]] == [
            "console", "console-2"]


@pytest.mark.parametrize(
    "body, field, status",
    [
        ({"name": "app", "scope": "sessions"}, "scope", 400),
        ({"name": "x", "scope": "root"}, "scope", 400),
        ({"scope": "scim"}, "name", 400),
        ({"name": "  ", "scope": "scim"}, "name", 400),
        ({"name": 7, "scope": "scim"}, "name", 400),
        ({"name": "n" * 201, "scope": "scim"}, "name", 400),
        (["name"], "object", 400),
        ({"name": "console", "scope": "scim"}, "console", 409),
    ],
)
def test_bad_token_requests_are_refused_and_create_nothing(admin, body, field, status):
    response = admin.post("/tokens", json=body)
    assert response.status_code == status, response.text
    assert field in response.text
    assert [t["name"] for t in admin.get("/tokens").json()["tokens"]] == ["console"]


def test_bad_revocations_are_refused(admin):
    assert admin.delete("/tokens/nosuch").status_code == 404
    assert admin.delete("/tokens/console", params={"self": "perhaps"}).status_code == 400


def test_tenants_never_see_or_revoke_each_others_tokens(app, admin):
    admin.post("/tokens", json={"name": "okta", "scope": "scim"})
    with admin_client(app, "their-console", tenant="other") as other:
        assert [t["name"] for t in other.get("/tokens").json()["tokens"]] == ["their-console"]
        assert other.delete("/tokens/okta").status_code == 404
        assert other.delete("/tokens/console").status_code == 404
        created = other.post("/tokens", json={"name": "okta", "scope": "scim"})
        assert created.status_code == 201  # the same name in another tenant
    listed = {t["name"]: t for t in admin.get("/tokens").json()["tokens"]}
    assert set(listed) == {"console", "okta"} and listed["okta"]["revoked_at"] is None


def test_a_scim_token_cannot_manage_tokens(app, scim_token):
    with http_client(app, scim_token, "/api/v1/admin") as idp:
        assert idp.get("/tokens").status_code == 403
        assert idp.post("/tokens", json={"name": "x", "scope": "admin"}).status_code == 403
