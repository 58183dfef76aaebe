"""SCIM Groups over HTTP: memberships are rows changed by deltas (RFC 7644 §3.5.2)."""

from __future__ import annotations

from .scimdata import create_group, create_user, member_ids, patch


def test_create_group_with_members(scim):
    ann = create_user(scim, "ann@example.com")
    group = create_group(scim, "Ops", [ann["id"]])
    assert [m["value"] for m in group["members"]] == [ann["id"]]
    assert group["meta"]["resourceType"] == "Group"


def test_display_name_is_unique_ignoring_case(scim):
    create_group(scim, "Ops")
    response = scim.post("/Groups", json={"displayName": "OPS"})
    assert response.status_code == 409
    assert response.json()["scimType"] == "uniqueness"


def test_members_must_be_users_of_the_tenant(scim):
    response = scim.post("/Groups", json={"displayName": "G", "members": [{"value": "nobody"}]})
    assert response.status_code == 400
    assert response.json()["scimType"] == "invalidValue"
    assert scim.get("/Groups", params={"filter": 'displayName eq "G"'}).json()["totalResults"] == 0


def test_patch_add_and_remove_change_only_the_named_members(scim):
    users = [create_user(scim, f"u{i}@example.com")["id"] for i in range(3)]
    group = create_group(scim, "Crew", users[:2])
    response = scim.patch(f"/Groups/{group['id']}", json=patch(
        {"op": "add", "path": "members", "value": [{"value": users[2]}]},
        {"op": "remove", "path": f'members[value eq "{users[0]}"]'},
    ))
    assert response.status_code == 204
    assert member_ids(scim, group["id"]) == {users[1], users[2]}


def test_adding_an_existing_member_again_is_harmless(scim):
    user = create_user(scim, "twice@example.com")["id"]
    group = create_group(scim, "Twice", [user])
    body = patch({"op": "add", "path": "members", "value": [{"value": user}]})
    assert scim.patch(f"/Groups/{group['id']}", json=body).status_code == 204
    assert member_ids(scim, group["id"]) == {user}


def test_replace_members_sets_exactly_the_given_list(scim):
    users = [create_user(scim, f"r{i}@example.com")["id"] for i in range(3)]
    group = create_group(scim, "Replace", users[:2])
    body = patch({"op": "replace", "path": "members", "value": [{"value": users[2]}]})
    scim.patch(f"/Groups/{group['id']}", json=body)
    assert member_ids(scim, group["id"]) == {users[2]}


def test_patch_with_attributes_returns_the_group(scim):
    group = create_group(scim, "Body")
    response = scim.patch(f"/Groups/{group['id']}", params={"attributes": "displayName"},
                          json=patch({"op": "replace", "path": "displayName", "value": "Renamed"}))
    assert response.status_code == 200
    assert response.json()["displayName"] == "Renamed"


def test_put_replaces_name_and_members(scim):
    users = [create_user(scim, f"p{i}@example.com")["id"] for i in range(2)]
    group = create_group(scim, "Put", [users[0]])
    response = scim.put(f"/Groups/{group['id']}", json={
        "displayName": "Put 2", "members": [{"value": users[1]}]})
    assert response.status_code == 200
    assert response.json()["displayName"] == "Put 2"
    assert member_ids(scim, group["id"]) == {users[1]}


def test_excluded_members_are_left_out(scim):
    user = create_user(scim, "x@example.com")["id"]
    group = create_group(scim, "Excl", [user])
    one = scim.get(f"/Groups/{group['id']}", params={"excludedAttributes": "members"}).json()
    assert "members" not in one and one["displayName"] == "Excl"
    listed = scim.get("/Groups", params={"excludedAttributes": "members"}).json()["Resources"]
    assert all("members" not in g for g in listed)


def test_delete_group_is_204_then_404(scim):
    group = create_group(scim, "Temp")
    assert scim.delete(f"/Groups/{group['id']}").status_code == 204
    assert scim.get(f"/Groups/{group['id']}").status_code == 404
    assert scim.delete(f"/Groups/{group['id']}").status_code == 404


def test_membership_change_bumps_the_group_version(scim):
    user = create_user(scim, "v@example.com")["id"]
    group = create_group(scim, "Versioned")
    scim.patch(f"/Groups/{group['id']}",
               json=patch({"op": "add", "path": "members", "value": [{"value": user}]}))
    after = scim.get(f"/Groups/{group['id']}").json()
    assert after["meta"]["version"] != group["meta"]["version"]


def test_remove_by_filter_of_a_non_member_changes_nothing(scim):
    user = create_user(scim, "in@example.com")["id"]
    group = create_group(scim, "Stable", [user])
    response = scim.patch(f"/Groups/{group['id']}",
                          json=patch({"op": "remove", "path": 'members[value eq "ghost"]'}))
    assert response.status_code == 204
    assert member_ids(scim, group["id"]) == {user}
