"""One tenant's token neither reads nor changes another tenant's resources."""

from __future__ import annotations

import pytest

from .conftest import http_client, make_token
from .scimdata import create_group, create_user, patch


@pytest.fixture
def other(app):
    token = make_token(app, "acme-okta", "scim", tenant="acme")
    with http_client(app, token, "/scim/v2") as client:
        yield client


def test_lists_and_filters_see_only_the_own_tenant(scim, other):
    create_user(scim, "mine@example.com")
    assert other.get("/Users").json()["totalResults"] == 0
    found = other.get("/Users", params={"filter": 'userName eq "mine@example.com"'}).json()
    assert found["totalResults"] == 0


def test_another_tenants_user_is_404_for_every_method(scim, other):
    user = create_user(scim, "private@example.com")
    path = f"/Users/{user['id']}"
    assert other.get(path).status_code == 404
    assert other.put(path, json={"userName": "stolen@example.com"}).status_code == 404
    assert (
        other.patch(path, json=patch({"op": "replace", "value": {"active": False}})).status_code
        == 404
    )
    assert other.delete(path).status_code == 404
    assert scim.get(path).json()["active"] is True


def test_another_tenants_group_cannot_be_changed_or_joined(scim, other):
    user = create_user(scim, "u@example.com")
    group = create_group(scim, "Ops", [user["id"]])
    assert (
        other.patch(
            f"/Groups/{group['id']}", json=patch({"op": "remove", "path": "members"})
        ).status_code
        == 404
    )
    assert other.delete(f"/Groups/{group['id']}").status_code == 404
    foreign = other.post(
        "/Groups", json={"displayName": "Mine", "members": [{"value": user["id"]}]}
    )
    assert foreign.status_code == 400


def test_names_are_unique_per_tenant_only(scim, other):
    create_user(scim, "same@example.com")
    create_group(scim, "Same")
    assert other.post("/Users", json={"userName": "same@example.com"}).status_code == 201
    assert other.post("/Groups", json={"displayName": "Same"}).status_code == 201
