"""SCIM Users over HTTP: create, read, replace, patch, delete, versions (RFC 7644 §3)."""

from __future__ import annotations

import pytest

from .conftest import http_client, make_token
from .scimdata import ENTERPRISE, create_user, member_ids, patch, user_body


def test_create_returns_201_with_id_location_and_etag(scim):
    response = scim.post("/Users", json=user_body("ann@example.com"))
    assert response.status_code == 201
    user = response.json()
    assert user["id"]
    assert response.headers["Location"] == user["meta"]["location"]
    assert response.headers["ETag"] == user["meta"]["version"]
    assert user["meta"]["resourceType"] == "User"
    assert user["active"] is True
    assert user["emails"] == [{"value": "ann@example.com", "type": "work", "primary": True}]


def test_password_is_never_echoed(scim):
    user = create_user(scim, "pw@example.com", password="s3cret!")
    assert "password" not in user
    assert "password" not in scim.get(f"/Users/{user['id']}").json()


@pytest.mark.parametrize("variant", ["ANN@example.com", "ann@EXAMPLE.com", "ann@example.com"])
def test_username_is_unique_ignoring_case(scim, variant):
    create_user(scim, "ann@example.com")
    response = scim.post("/Users", json=user_body(variant))
    assert response.status_code == 409
    assert response.json()["scimType"] == "uniqueness"
    assert response.json()["status"] == "409"


@pytest.fixture
def other_tenant(app):
    """A SCIM client of a second tenant, ``globex``."""
    with http_client(app, make_token(app, "globex-okta", "scim", "globex"), "/scim/v2") as client:
        yield client


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (user_body("same@example.com"), user_body("same@example.com")),
        (user_body("a@example.com", externalId="00u1"),
         user_body("b@example.com", externalId="00u1")),
    ],
    ids=["userName", "externalId"],
)
def test_username_and_external_id_are_unique_per_tenant(scim, other_tenant, first, second):
    """The same value in two tenants is two users; twice in one tenant is 409 uniqueness."""
    mine = scim.post("/Users", json=first)
    theirs = other_tenant.post("/Users", json=second)
    assert (mine.status_code, theirs.status_code) == (201, 201), theirs.text
    assert mine.json()["id"] != theirs.json()["id"]
    duplicate = other_tenant.post("/Users", json=second)
    assert duplicate.status_code == 409
    assert duplicate.json()["scimType"] == "uniqueness"
    for client, user in ((scim, mine.json()), (other_tenant, theirs.json())):
        found = client.get("/Users", params={"filter": f'userName eq "{user["userName"]}"'})
        assert [u["id"] for u in found.json()["Resources"]] == [user["id"]]


def test_username_is_required(scim):
    response = scim.post("/Users", json={"name": {"givenName": "No"}})
    assert response.status_code == 400
    assert "userName" in response.json()["detail"]


def test_read_only_and_unknown_attributes_are_ignored(scim):
    body = user_body(
        "ro@example.com",
        id="mine",
        meta={"created": "yesterday"},
        groups=[],
        roles=[],
        favouriteColour="teal",
    )
    response = scim.post("/Users", json=body)
    assert response.status_code == 201
    user = response.json()
    assert user["id"] != "mine"
    assert "favouriteColour" not in user


def test_enterprise_extension_round_trips(scim):
    manager = create_user(scim, "boss@example.com")
    user = create_user(
        scim,
        "emp@example.com",
        **{
            ENTERPRISE: {
                "employeeNumber": "42",
                "department": "Ops",
                "manager": {"value": manager["id"]},
            }
        },
    )
    extension = scim.get(f"/Users/{user['id']}").json()[ENTERPRISE]
    assert extension["employeeNumber"] == "42"
    assert extension["department"] == "Ops"
    assert extension["manager"]["value"] == manager["id"]


def test_put_replaces_every_writable_attribute(scim):
    user = create_user(scim, "put@example.com", title="Engineer", nickName="P")
    replacement = user_body("put@example.com", displayName="Put Person")
    response = scim.put(f"/Users/{user['id']}", json=replacement)
    assert response.status_code == 200
    replaced = response.json()
    assert replaced["displayName"] == "Put Person"
    assert "title" not in replaced and "nickName" not in replaced
    assert replaced["meta"]["version"] != user["meta"]["version"]


def test_put_without_active_keeps_the_current_state(scim):
    user = create_user(scim, "keep@example.com", active=False)
    body = user_body("keep@example.com")
    del body["active"]
    assert scim.put(f"/Users/{user['id']}", json=body).json()["active"] is False


def test_patch_returns_200_with_the_resource(scim):
    user = create_user(scim, "p@example.com")
    response = scim.patch(
        f"/Users/{user['id']}", json=patch({"op": "replace", "path": "displayName", "value": "P"})
    )
    assert response.status_code == 200
    assert response.json()["displayName"] == "P"


def test_patch_is_atomic_when_a_later_operation_fails(scim):
    user = create_user(scim, "atomic@example.com")
    response = scim.patch(
        f"/Users/{user['id']}",
        json=patch(
            {"op": "replace", "path": "displayName", "value": "Changed"},
            {"op": "replace", "path": "noSuchAttribute", "value": "x"},
        ),
    )
    assert response.status_code == 400
    assert "displayName" not in scim.get(f"/Users/{user['id']}").json()


def test_patch_to_a_taken_username_is_409_and_changes_nothing(scim):
    create_user(scim, "taken@example.com")
    user = create_user(scim, "free@example.com")
    response = scim.patch(
        f"/Users/{user['id']}",
        json=patch({"op": "replace", "path": "userName", "value": "TAKEN@example.com"}),
    )
    assert response.status_code == 409
    assert scim.get(f"/Users/{user['id']}").json()["userName"] == "free@example.com"


def test_delete_then_get_is_404_and_the_username_is_free_again(scim):
    user = create_user(scim, "gone@example.com")
    assert scim.delete(f"/Users/{user['id']}").status_code == 204
    missing = scim.get(f"/Users/{user['id']}")
    assert missing.status_code == 404
    assert missing.json()["status"] == "404"
    create_user(scim, "gone@example.com")


def test_deleted_user_leaves_no_membership_behind(scim):
    user = create_user(scim, "member@example.com")
    group = scim.post("/Groups", json={"displayName": "Ops", "members": [{"value": user["id"]}]})
    assert group.status_code == 201, group.text
    assert member_ids(scim, group.json()["id"]) == {user["id"]}
    assert scim.delete(f"/Users/{user['id']}").status_code == 204
    response = scim.get(f"/Groups/{group.json()['id']}")
    assert response.status_code == 200, response.text
    assert response.json()["members"] == []


def test_deactivated_user_is_still_readable(scim):
    user = create_user(scim, "off@example.com")
    scim.patch(f"/Users/{user['id']}", json=patch({"op": "replace", "value": {"active": False}}))
    assert scim.get(f"/Users/{user['id']}").json()["active"] is False
    found = scim.get("/Users", params={"filter": 'userName eq "off@example.com"'}).json()
    assert found["totalResults"] == 1 and found["Resources"][0]["active"] is False


def test_if_match_with_a_stale_version_is_412_and_changes_nothing(scim):
    user = create_user(scim, "v@example.com")
    scim.patch(f"/Users/{user['id']}", json=patch({"op": "replace", "path": "title", "value": "A"}))
    stale = scim.patch(
        f"/Users/{user['id']}",
        headers={"If-Match": user["meta"]["version"]},
        json=patch({"op": "replace", "path": "title", "value": "B"}),
    )
    assert stale.status_code == 412
    assert scim.get(f"/Users/{user['id']}").json()["title"] == "A"


def test_if_match_with_the_current_version_applies(scim):
    user = create_user(scim, "v2@example.com")
    response = scim.put(
        f"/Users/{user['id']}",
        headers={"If-Match": user["meta"]["version"]},
        json=user_body("v2@example.com", title="T"),
    )
    assert response.status_code == 200, response.text
    assert response.json()["title"] == "T"
    assert response.json()["meta"]["version"] != user["meta"]["version"]
    assert scim.get(f"/Users/{user['id']}").json()["title"] == "T"


def test_if_none_match_with_the_current_version_is_304(scim):
    user = create_user(scim, "cache@example.com")
    response = scim.get(f"/Users/{user['id']}", headers={"If-None-Match": user["meta"]["version"]})
    assert response.status_code == 304
    changed = scim.get(f"/Users/{user['id']}", headers={"If-None-Match": 'W/"999"'})
    assert changed.status_code == 200


def test_version_does_not_change_on_a_no_op_patch(scim):
    user = create_user(scim, "same@example.com", displayName="Same")
    response = scim.patch(
        f"/Users/{user['id']}",
        json=patch({"op": "replace", "path": "displayName", "value": "Same"}),
    )
    assert response.json()["meta"]["version"] == user["meta"]["version"]


def test_users_list_their_groups(scim):
    user = create_user(scim, "grouped@example.com")
    group = scim.post(
        "/Groups", json={"displayName": "Night shift", "members": [{"value": user["id"]}]}
    ).json()
    groups = scim.get(f"/Users/{user['id']}").json()["groups"]
    assert [(g["value"], g["display"]) for g in groups] == [(group["id"], "Night shift")]


def test_deleting_a_manager_clears_the_reference(scim):
    manager = create_user(scim, "mgr@example.com")
    report = create_user(scim, "rep@example.com", **{ENTERPRISE: {"manager": manager["id"]}})
    scim.delete(f"/Users/{manager['id']}")
    after = scim.get(f"/Users/{report['id']}").json()
    assert "manager" not in after.get(ENTERPRISE, {})
    assert after["meta"]["version"] != report["meta"]["version"]


def test_a_trailing_slash_is_served_and_a_doubled_one_is_a_scim_404(scim):
    """A tenant URL saved with a trailing slash works; ``//Users`` is not merged into a
    redirect (an HTML 308 an IdP would not follow) but answered as an unknown SCIM URL."""
    trailing = scim.get("/Users/")
    assert trailing.status_code == 200
    assert trailing.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:ListResponse"]
    doubled = scim.get("//Users")
    assert doubled.status_code == 404
    assert doubled.headers["content-type"].startswith("application/scim+json")
    assert doubled.json()["status"] == "404"
