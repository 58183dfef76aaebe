"""meta.version and ETags (RFC 7644 §3.14): a user's version changes whenever its resource
does, group membership included, and every precondition header form is understood."""

from __future__ import annotations

import pytest

from .scimdata import create_group, create_user, patch


def _version(scim, user_id: str) -> str:
    response = scim.get(f"/Users/{user_id}")
    assert response.status_code == 200
    assert response.headers["ETag"] == response.json()["meta"]["version"]
    return response.headers["ETag"]


def test_joining_a_group_gives_the_user_a_new_version(scim):
    ann = create_user(scim, "ann@example.com")
    before = _version(scim, ann["id"])
    group = create_group(scim, "Nurses")
    assert scim.patch(f"/Groups/{group['id']}", json=patch(
        {"op": "add", "path": "members", "value": [{"value": ann["id"]}]})).status_code == 204
    assert scim.get(f"/Users/{ann['id']}",
                    headers={"If-None-Match": before}).status_code == 200
    after = _version(scim, ann["id"])
    assert after != before
    assert [g["display"] for g in scim.get(f"/Users/{ann['id']}").json()["groups"]] == ["Nurses"]


@pytest.mark.parametrize("change", ["remove", "replace", "put", "delete_group"])
def test_leaving_a_group_gives_the_user_a_new_version(scim, change):
    ann = create_user(scim, "ann@example.com")
    bob = create_user(scim, "bob@example.com")
    group = create_group(scim, "Nurses", [ann["id"]])
    before = _version(scim, ann["id"])
    if change == "remove":
        scim.patch(f"/Groups/{group['id']}", json=patch(
            {"op": "remove", "path": f'members[value eq "{ann["id"]}"]'}))
    elif change == "replace":
        scim.patch(f"/Groups/{group['id']}", json=patch(
            {"op": "replace", "path": "members", "value": [{"value": bob["id"]}]}))
    elif change == "put":
        scim.put(f"/Groups/{group['id']}", json={"displayName": "Nurses", "members": []})
    else:
        assert scim.delete(f"/Groups/{group['id']}").status_code == 204
    assert "groups" not in scim.get(f"/Users/{ann['id']}").json()
    assert _version(scim, ann["id"]) != before
    assert scim.get(f"/Users/{ann['id']}", headers={"If-None-Match": before}).status_code == 200


def test_a_user_whose_groups_did_not_change_keeps_its_version(scim):
    ann = create_user(scim, "ann@example.com")
    bob = create_user(scim, "bob@example.com")
    group = create_group(scim, "Nurses", [ann["id"]])
    before = _version(scim, bob["id"])
    scim.patch(f"/Groups/{group['id']}", json=patch(
        {"op": "remove", "path": f'members[value eq "{ann["id"]}"]'}))
    assert _version(scim, bob["id"]) == before


@pytest.mark.parametrize("form", ["{tag}", "{strong}", '"nope", {tag}', "*", " {tag} "])
def test_if_none_match_forms_answer_304_with_the_etag(scim, form):
    ann = create_user(scim, "ann@example.com")
    tag = _version(scim, ann["id"])
    header = form.format(tag=tag, strong=tag.removeprefix("W/"))
    response = scim.get(f"/Users/{ann['id']}", headers={"If-None-Match": header})
    assert response.status_code == 304
    assert response.headers["ETag"] == tag
    assert response.content == b""


@pytest.mark.parametrize("form", ["{tag}", "{strong}", '"nope", {tag}', "*"])
def test_if_match_forms_let_the_change_through(scim, form):
    ann = create_user(scim, "ann@example.com")
    tag = _version(scim, ann["id"])
    header = form.format(tag=tag, strong=tag.removeprefix("W/"))
    response = scim.patch(f"/Users/{ann['id']}", headers={"If-Match": header},
                          json=patch({"op": "replace", "path": "title", "value": "Nurse"}))
    assert response.status_code == 200, response.text
    assert scim.get(f"/Users/{ann['id']}").json()["title"] == "Nurse"


@pytest.mark.parametrize("header", ['W/"999"', '"999"', "garbage", 'W/"1", W/"999"'])
def test_a_stale_if_match_is_412_and_changes_nothing(scim, header):
    ann = create_user(scim, "ann@example.com")
    scim.patch(f"/Users/{ann['id']}", json=patch({"op": "replace", "path": "title", "value": "A"}))
    response = scim.patch(f"/Users/{ann['id']}", headers={"If-Match": header},
                          json=patch({"op": "replace", "path": "title", "value": "B"}))
    assert response.status_code == 412
    assert response.json()["status"] == "412"
    assert scim.get(f"/Users/{ann['id']}").json()["title"] == "A"
