"""Okta's provisioning flows, replayed over HTTP against a real ``scim-bridge serve``.

Written from Okta's "SCIM 2.0" reference (developer.okta.com/docs/api/openapi/okta-scim/
guides/scim-20) and its OIN SPEC test list; the numbers (B7, A3, ...) are the items of
``idp-quirks.md``. Every request carries the headers Okta really sends (B1).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from . import live
from .live import assert_error, assert_list_response, session_is_active, start_session, unique

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

#: What Okta's provisioning client puts on every request (B1); bodies add the Content-Type.
OKTA_HEADERS = {
    "Accept": "application/scim+json",
    "Accept-Charset": "utf-8",
    "Accept-Encoding": "gzip,deflate",
    "User-Agent": "Okta SCIM Client 1.0.0",
}
OKTA_BODY_TYPE = "application/scim+json; charset=utf-8"


@pytest.fixture(scope="module")
def okta(server: live.LiveServer) -> Any:
    with server.client(OKTA_HEADERS, body_content_type=OKTA_BODY_TYPE) as client:
        yield client


@pytest.fixture(scope="module")
def application(server: live.LiveServer) -> Any:
    with server.application() as client:
        yield client


# -- what Okta sends --------------------------------------------------------------------------


def okta_profile(user_name: str, **changes: Any) -> dict[str, Any]:
    """The body of Okta's create POST (B9): with the placeholder password, ``groups: []``,
    ``locale`` and Okta's own user id as ``externalId``."""
    body: dict[str, Any] = {
        "schemas": [CORE_USER],
        "userName": user_name,
        "name": {"givenName": "Test", "familyName": "User"},
        "emails": [{"primary": True, "value": user_name, "type": "work"}],
        "displayName": "Test User",
        "locale": "en-US",
        "externalId": unique("00u"),
        "groups": [],
        "password": "1mz050nq",
        "active": True,
    }
    body.update(changes)
    return body


def patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def lookup_url(user_name: str) -> str:
    """The assignment lookup exactly as Okta encodes it (B7)."""
    return (
        f"/Users?filter=userName%20eq%20%22{user_name.replace('@', '%40')}%22"
        "&startIndex=1&count=100"
    )


def assign(okta: Any, user_name: str, **changes: Any) -> dict[str, Any]:
    """Assigning a user to the app: lookup (miss), then create (B7, B9, B10)."""
    assert okta.get(lookup_url(user_name)).json()["totalResults"] == 0
    created = okta.post("/Users", json=okta_profile(user_name, **changes))
    assert created.status_code == 201, created.text
    return created.json()


def push_group(okta: Any, name: str) -> dict[str, Any]:
    """Push Groups: create (B18)."""
    created = okta.post("/Groups", json={"schemas": [CORE_GROUP], "displayName": name,
                                         "members": []})
    assert created.status_code == 201, created.text
    return created.json()


def member(user: dict[str, Any]) -> dict[str, str]:
    return {"value": user["id"], "display": user["userName"]}


def rename(group: dict[str, Any], name: str) -> dict[str, Any]:
    """Okta's OIN group rename (B20): no path, and the read-only id inside the value."""
    return patch({"op": "replace", "value": {"id": group["id"], "displayName": name}})


def member_ids(okta: Any, group_id: str) -> set[str]:
    response = okta.get(f"/Groups/{group_id}")
    assert response.status_code == 200, response.text
    return {entry["value"] for entry in response.json().get("members") or []}


# -- saving the provisioning settings (B5) ---------------------------------------------------


def test_connection_test_lists_two_users_with_integer_paging(okta):
    assign(okta, f"{unique('probe')}@okta.local")
    response = okta.get("/Users?startIndex=1&count=2")
    assert response.status_code == 200
    body = response.json()
    assert_list_response(body)
    assert body["startIndex"] == 1
    assert 1 <= body["itemsPerPage"] == len(body["Resources"]) <= 2


def test_connection_test_lists_groups_when_groups_are_enabled(okta):
    response = okta.get("/Groups?startIndex=1&count=100")
    assert response.status_code == 200
    assert_list_response(response.json())


def test_connection_test_without_any_content_type_is_answered(server):
    with server.client({"User-Agent": "Okta SCIM Client 1.0.0"}, body_content_type=None) as bare:
        response = bare.get("/Users?startIndex=1&count=2")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/scim+json")


# -- import (B17, A1) -------------------------------------------------------------------------


def walk(okta: Any, resource: str, count: int) -> list[str]:
    """Okta's import: ``startIndex`` grows by ``count`` while ``totalResults`` is larger."""
    start, ids = 1, []
    while True:
        page = okta.get(f"/{resource}?startIndex={start}&count={count}").json()
        assert_list_response(page)
        assert page["startIndex"] == start
        assert page["itemsPerPage"] == len(page["Resources"]) <= count
        ids += [found["id"] for found in page["Resources"]]
        if start + count > page["totalResults"]:
            assert len(ids) == page["totalResults"]
            return ids
        start += count


@pytest.fixture(scope="module")
def imported_user_ids(okta: Any) -> set[str]:
    """More than one page of users (Okta's page is 100)."""
    return {assign(okta, f"{unique('import')}@okta.local")["id"] for _ in range(105)}


def test_import_walks_every_page_of_users(okta, imported_user_ids):
    ids = walk(okta, "Users", 100)
    assert len(ids) == len(set(ids)), "a user appeared on two pages"
    assert imported_user_ids <= set(ids)
    assert len(ids) > 100


def test_import_order_is_the_same_whatever_the_page_size(okta, imported_user_ids):
    assert walk(okta, "Users", 100) == walk(okta, "Users", 100) == walk(okta, "Users", 37)


def test_import_walks_every_page_of_groups(okta):
    """The same walk as for users (B17), here with small pages."""
    pushed = {push_group(okta, unique("import-group"))["id"] for _ in range(3)}
    ids = walk(okta, "Groups", 2)
    assert len(ids) == len(set(ids))
    assert pushed <= set(ids)


# -- assignment: lookup, then create (B7–B11, A2, A3) ----------------------------------------


def test_lookup_of_an_unknown_user_is_an_empty_list_response(okta):
    response = okta.get(lookup_url(f"{unique('nobody')}@okta.local"))
    assert response.status_code == 200
    body = response.json()
    assert_list_response(body)
    assert (body["totalResults"], body["itemsPerPage"], body["Resources"]) == (0, 0, [])


@pytest.mark.parametrize(
    "query",
    [
        "filter=userName%20eq%20%22{}%22&startIndex=1&count=100",
        "startIndex=1&count=100&filter=userName%20eq%20%22{}%22",
        "count=100&filter=userName+eq+%22{}%22&startIndex=1",
    ],
    ids=["filter-first", "filter-last", "plus-for-space"],
)
def test_lookup_finds_the_user_whatever_the_parameter_order(okta, query):
    user_name = f"{unique('order')}@okta.local"
    user = assign(okta, user_name)
    body = okta.get("/Users?" + query.format(user_name.replace("@", "%40"))).json()
    assert [found["id"] for found in body["Resources"]] == [user["id"]]


def test_create_answers_201_with_the_new_user(okta):
    user_name = f"{unique('create')}@okta.local"
    profile = okta_profile(user_name)
    response = okta.post("/Users", json=profile)
    assert response.status_code == 201
    user = response.json()
    assert user["id"] and "bulkid" not in user["id"].lower()  # B4
    assert response.headers["Location"].endswith(f"/Users/{user['id']}")
    assert CORE_USER in user["schemas"]
    assert user["meta"]["resourceType"] == "User"
    assert user["userName"] == user_name
    assert user["externalId"] == profile["externalId"]
    assert user["locale"] == "en-US"
    assert user["displayName"] == "Test User"
    assert user["name"] == {"givenName": "Test", "familyName": "User"}
    assert user["active"] is True


def test_created_user_has_one_primary_email_in_an_array(okta):
    user = assign(okta, f"{unique('email')}@okta.local")
    assert isinstance(user["emails"], list)
    assert [email["primary"] for email in user["emails"]] == [True]
    assert user["emails"][0]["value"] == user["userName"]


def test_password_is_never_echoed(okta):
    user = assign(okta, f"{unique('pw')}@okta.local", password="Echo-Me-Not-41")
    assert "password" not in user
    assert "password" not in okta.get(f"/Users/{user['id']}").json()


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_password_is_never_stored(okta, server, method):
    """Okta sends it on create (B9), on AIW password-sync PUTs and OIN password-sync PATCHes."""
    password = unique("Never-Stored")
    user = assign(okta, f"{unique('pw')}@okta.local",
                  password=password if method == "POST" else "placeholder")
    if method == "PUT":
        current = okta.get(f"/Users/{user['id']}").json()
        response = okta.put(f"/Users/{user['id']}", json={**current, "password": password})
    elif method == "PATCH":
        response = okta.patch(f"/Users/{user['id']}",
                              json=patch({"op": "replace", "value": {"password": password}}))
    else:
        response = okta.get(f"/Users/{user['id']}")
    assert response.status_code in (200, 204), response.text
    assert "password" not in (response.json() if response.content else {})
    assert password not in server.stored_text()


def test_okta_groups_array_on_create_is_ignored(okta):
    user = assign(okta, f"{unique('nogroups')}@okta.local", groups=[{"value": "not-a-group"}])
    assert "groups" not in okta.get(f"/Users/{user['id']}").json()


@pytest.mark.parametrize("spelling", [str.lower, str.upper, str.title], ids=["same", "UPPER",
                                                                           "Title"])
def test_duplicate_create_is_a_409_error_even_when_only_the_case_differs(okta, spelling):
    user_name = f"{unique('dup')}@okta.local"
    assign(okta, user_name)
    response = okta.post("/Users", json=okta_profile(spelling(user_name)))
    assert_error(response, 409)


def test_user_created_without_external_id_is_accepted(okta):
    """The documented custom-attribute variant of the create POST has no externalId (B9)."""
    profile = okta_profile(f"{unique('custom')}@okta.local")
    del profile["externalId"]
    response = okta.post("/Users", json=profile)
    assert response.status_code == 201
    assert response.json()["id"]


# -- profile updates: GET, then a full PUT (B8, B12) -----------------------------------------


def test_get_user_returns_a_single_resource(okta):
    user = assign(okta, f"{unique('single')}@okta.local")
    body = okta.get(f"/Users/{user['id']}").json()
    assert "Resources" not in body
    assert body["id"] == user["id"] and CORE_USER in body["schemas"]


def test_profile_update_puts_back_the_get_result_with_okta_changes(okta):
    user = assign(okta, f"{unique('put')}@okta.local")
    current = okta.get(f"/Users/{user['id']}").json()
    current["name"] = {**current["name"], "middleName": "Excited", "givenName": "Another"}
    current["emails"] = [{**email, "display": email["value"]} for email in current["emails"]]
    current["groups"] = []
    response = okta.put(f"/Users/{user['id']}", json=current)
    assert response.status_code == 200
    updated = response.json()
    assert updated["id"] == user["id"]
    assert updated["name"]["middleName"] == "Excited"
    assert updated["name"]["givenName"] == "Another"
    assert updated["meta"]["version"] != user["meta"]["version"]
    assert okta.get(f"/Users/{user['id']}").json()["name"]["middleName"] == "Excited"


def test_profile_put_ignores_the_read_only_id_and_meta_it_carries(okta):
    user = assign(okta, f"{unique('put-ro')}@okta.local")
    body = okta_profile(user["userName"], id="23a35c27-someone-else",
                        meta={"resourceType": "User", "created": "2019-09-10T02:02:58Z"})
    response = okta.put(f"/Users/{user['id']}", json=body)
    assert response.status_code == 200
    assert response.json()["id"] == user["id"]
    assert response.json()["meta"]["created"] == user["meta"]["created"]


def test_profile_put_with_empty_groups_keeps_the_memberships(okta):
    """``groups`` is read-only: Okta's ``"groups": []`` must not remove anyone from a group."""
    user = assign(okta, f"{unique('put-groups')}@okta.local")
    group = push_group(okta, unique("Keep"))
    okta.patch(f"/Groups/{group['id']}",
               json=patch({"op": "add", "path": "members", "value": [member(user)]}))
    current = okta.get(f"/Users/{user['id']}").json()
    assert okta.put(f"/Users/{user['id']}", json={**current, "groups": []}).status_code == 200
    assert member_ids(okta, group["id"]) == {user["id"]}


def test_profile_put_with_a_repeated_email_stores_it_once(okta):
    """B16: never repeat the same value+type pair."""
    user = assign(okta, f"{unique('twice')}@okta.local")
    email = {"primary": True, "value": user["userName"], "type": "work"}
    body = okta_profile(user["userName"], emails=[email, email])
    assert okta.put(f"/Users/{user['id']}", json=body).json()["emails"] == [email]


# -- deactivate and reactivate (B13, B14, A5) ------------------------------------------------


def deactivate(okta: Any, user_id: str, active: bool = False) -> Any:
    """Okta's OIN deactivation: a replace without a path (B13)."""
    return okta.patch(f"/Users/{user_id}",
                      json=patch({"op": "replace", "value": {"active": active}}))


def test_deactivate_is_a_pathless_replace_answered_with_the_user(okta):
    user = assign(okta, f"{unique('off')}@okta.local")
    response = deactivate(okta, user["id"])
    assert response.status_code == 200
    assert response.json()["active"] is False
    assert response.json()["userName"] == user["userName"]


def test_deactivated_user_stays_readable_by_id_and_by_lookup(okta):
    user = assign(okta, f"{unique('soft')}@okta.local")
    deactivate(okta, user["id"])
    assert okta.get(f"/Users/{user['id']}").json()["active"] is False
    found = okta.get(lookup_url(user["userName"])).json()["Resources"]
    assert [(u["id"], u["active"]) for u in found] == [(user["id"], False)]


def test_deactivation_ends_the_users_sessions(okta, application):
    user = assign(okta, f"{unique('revoke')}@okta.local")
    token = start_session(application, user["id"])
    deactivate(okta, user["id"])
    assert not session_is_active(application, token)


def test_reactivate_is_the_same_patch_with_true(okta):
    user = assign(okta, f"{unique('on')}@okta.local")
    deactivate(okta, user["id"])
    response = deactivate(okta, user["id"], active=True)
    assert response.status_code == 200
    assert response.json()["active"] is True


def test_reactivated_user_can_sign_in_again(okta, application):
    user = assign(okta, f"{unique('again')}@okta.local")
    deactivate(okta, user["id"])
    refused = application.post("/sessions", json={"user_id": user["id"], "client": "web"})
    assert refused.status_code == 403
    deactivate(okta, user["id"], active=True)
    assert session_is_active(application, start_session(application, user["id"]))


def test_reassignment_after_deprovisioning_matches_the_same_user(okta):
    """B15: re-activation may need re-assignment, which is a new lookup and a new match."""
    user = assign(okta, f"{unique('back')}@okta.local")
    deactivate(okta, user["id"])
    found = okta.get(lookup_url(user["userName"].upper())).json()["Resources"]
    assert [u["id"] for u in found] == [user["id"]]
    assert deactivate(okta, user["id"], active=True).json()["active"] is True


def test_app_integration_wizard_deactivates_with_a_full_put(okta, application):
    user = assign(okta, f"{unique('aiw-off')}@okta.local")
    token = start_session(application, user["id"])
    current = okta.get(f"/Users/{user['id']}").json()
    response = okta.put(f"/Users/{user['id']}", json={**current, "active": False})
    assert response.status_code == 200
    assert okta.get(f"/Users/{user['id']}").json()["active"] is False
    assert not session_is_active(application, token)


def test_app_integration_wizard_reactivates_with_a_full_put(okta):
    user = assign(okta, f"{unique('aiw-on')}@okta.local")
    current = okta.get(f"/Users/{user['id']}").json()
    okta.put(f"/Users/{user['id']}", json={**current, "active": False})
    response = okta.put(f"/Users/{user['id']}", json={**current, "active": True})
    assert response.status_code == 200
    assert okta.get(f"/Users/{user['id']}").json()["active"] is True


# -- Push Groups (B18–B24) --------------------------------------------------------------------


def test_group_push_creates_the_group_with_an_id(okta):
    name = unique("Test SCIMv2")
    response = okta.post("/Groups", json={"schemas": [CORE_GROUP], "displayName": name,
                                          "members": []})
    assert response.status_code == 201
    group = response.json()
    assert group["id"] and group["displayName"] == name
    assert group.get("members", []) == []


def test_group_lookup_by_display_name(okta):
    group = push_group(okta, unique("Lookup"))
    quoted = group["displayName"].replace(" ", "%20")
    body = okta.get(f"/Groups?filter=displayName%20eq%20%22{quoted}%22").json()
    assert [found["id"] for found in body["Resources"]] == [group["id"]]


def test_group_lookup_finds_a_name_with_quotes_and_brackets(okta):
    group = push_group(okta, f'Sales "EMEA" [ops] {unique("q")}')
    literal = json.dumps(group["displayName"])
    body = okta.get("/Groups", params={"filter": f"displayName eq {literal}"}).json()
    assert [found["id"] for found in body["Resources"]] == [group["id"]]


def test_group_get_includes_its_members(okta):
    user = assign(okta, f"{unique('shown')}@okta.local")
    group = push_group(okta, unique("Shown"))
    okta.patch(f"/Groups/{group['id']}",
               json=patch({"op": "add", "path": "members", "value": [member(user)]}))
    members = okta.get(f"/Groups/{group['id']}").json()["members"]
    assert [m["value"] for m in members] == [user["id"]]


def test_group_rename_carries_the_read_only_id_inside_the_value(okta):
    group = push_group(okta, unique("Before"))
    new_name = unique("After")
    response = okta.patch(f"/Groups/{group['id']}", json=rename(group, new_name))
    assert response.status_code in (200, 204)
    renamed = okta.get(f"/Groups/{group['id']}").json()
    assert (renamed["id"], renamed["displayName"]) == (group["id"], new_name)


def test_rename_to_the_same_name_after_a_membership_change_keeps_the_members(okta):
    """B20: Okta re-sends the rename after every membership update, name unchanged."""
    users = [assign(okta, f"{unique('resend')}@okta.local") for _ in range(2)]
    group = push_group(okta, unique("Resent"))
    okta.patch(f"/Groups/{group['id']}",
               json=patch({"op": "add", "path": "members", "value": [member(u) for u in users]}))
    current = okta.get(f"/Groups/{group['id']}").json()
    response = okta.patch(f"/Groups/{group['id']}", json=rename(current, current["displayName"]))
    assert response.status_code in (200, 204)
    assert member_ids(okta, group["id"]) == {u["id"] for u in users}
    assert okta.get(f"/Groups/{group['id']}").json()["displayName"] == group["displayName"]


def test_membership_patch_removes_by_filter_and_adds_in_one_request(okta):
    leaving, staying, joining = (assign(okta, f"{unique('m')}@okta.local") for _ in range(3))
    group = push_group(okta, unique("Membership"))
    okta.patch(f"/Groups/{group['id']}", json=patch(
        {"op": "add", "path": "members", "value": [member(leaving), member(staying)]}))
    response = okta.patch(f"/Groups/{group['id']}", json=patch(
        {"op": "remove", "path": f'members[value eq "{leaving["id"]}"]'},
        {"op": "add", "path": "members", "value": [member(joining)]},
    ))
    assert response.status_code in (200, 204)
    if response.status_code == 200:
        assert response.json().get("members") in (None, [])  # "not advisable" to list them
    assert member_ids(okta, group["id"]) == {staying["id"], joining["id"]}


def test_removing_a_member_by_filter_ends_their_sessions(okta, application):
    user = assign(okta, f"{unique('kicked')}@okta.local")
    group = push_group(okta, unique("Revoking"))
    okta.patch(f"/Groups/{group['id']}",
               json=patch({"op": "add", "path": "members", "value": [member(user)]}))
    token = start_session(application, user["id"])
    okta.patch(f"/Groups/{group['id']}",
               json=patch({"op": "remove", "path": f'members[value eq "{user["id"]}"]'}))
    assert not session_is_active(application, token)


def test_full_push_replaces_the_members(okta):
    old, kept, new = (assign(okta, f"{unique('push')}@okta.local") for _ in range(3))
    group = push_group(okta, unique("FullPush"))
    okta.patch(f"/Groups/{group['id']}",
               json=patch({"op": "add", "path": "members", "value": [member(old), member(kept)]}))
    response = okta.patch(f"/Groups/{group['id']}", json=patch(
        {"op": "replace", "path": "members", "value": [member(kept), member(new)]}))
    assert response.status_code in (200, 204)
    assert member_ids(okta, group["id"]) == {kept["id"], new["id"]}


def test_app_integration_wizard_updates_a_group_with_a_put(okta):
    """B22: PUT with schemas, displayName and members, and no id."""
    old, new = (assign(okta, f"{unique('aiw-g')}@okta.local") for _ in range(2))
    group = push_group(okta, unique("AIW"))
    okta.patch(f"/Groups/{group['id']}",
               json=patch({"op": "add", "path": "members", "value": [member(old)]}))
    new_name = unique("AIW renamed")
    response = okta.put(f"/Groups/{group['id']}", json={
        "schemas": [CORE_GROUP], "displayName": new_name, "members": [member(new)]})
    assert response.status_code == 200
    assert response.json()["displayName"] == new_name
    assert member_ids(okta, group["id"]) == {new["id"]}


def test_app_integration_wizard_group_put_without_a_member_ends_their_sessions(
    okta, application
):
    user = assign(okta, f"{unique('aiw-out')}@okta.local")
    group = push_group(okta, unique("AIW out"))
    okta.patch(f"/Groups/{group['id']}",
               json=patch({"op": "add", "path": "members", "value": [member(user)]}))
    token = start_session(application, user["id"])
    okta.put(f"/Groups/{group['id']}", json={"schemas": [CORE_GROUP],
                                              "displayName": group["displayName"], "members": []})
    assert not session_is_active(application, token)


def test_okta_custom_group_extension_is_ignored(okta):
    """B25: SCIM 1.1's group description extension must not break a 2.0 push."""
    response = okta.post("/Groups", json={
        "schemas": [CORE_GROUP, "urn:okta:custom:group:1.0"],
        "displayName": unique("Described"),
        "urn:okta:custom:group:1.0": {"description": "pushed with a description"},
    })
    assert response.status_code == 201, response.text


def test_unlinking_a_pushed_group_deletes_it(okta):
    group = push_group(okta, unique("Unlinked"))
    assert okta.delete(f"/Groups/{group['id']}").status_code == 204
    assert_error(okta.get(f"/Groups/{group['id']}"), 404)


# -- Okta's OIN SPEC test (B26), step by step ------------------------------------------------

#: The SPEC test runner's own headers (B2): another User-Agent, no Accept-Encoding.
SPEC_HEADERS = {
    "Accept": "application/scim+json",
    "Accept-Charset": "utf-8",
    "Content-Type": "application/scim+json; charset=utf-8",
    "User-Agent": "OKTA SCIM Integration",
}


@pytest.fixture(scope="module")
def spec(server: live.LiveServer, okta: Any) -> Any:
    """The SPEC runner; at least one user exists before it runs, as Okta asks."""
    assign(okta, f"{unique('spec-first')}@okta.local")
    with server.client(SPEC_HEADERS, body_content_type=None) as client:
        yield client


def spec_user(user_name: str) -> dict[str, Any]:
    """The SPEC test's "realistic values" user."""
    return {
        "schemas": [CORE_USER],
        "userName": user_name,
        "name": {"givenName": "Randy", "familyName": "Omly"},
        "emails": [{"primary": True, "value": user_name, "type": "work"}],
        "displayName": "Randy Omly",
        "active": True,
    }


def test_spec_users_endpoint_lists_a_complete_first_user(spec):
    body = spec.get("/Users?count=1&startIndex=1").json()
    assert_list_response(body)
    first = body["Resources"][0]
    assert first["id"] and first["userName"]
    assert first["name"]["givenName"] and first["name"]["familyName"]
    assert first["active"] in (True, False)
    assert first["emails"][0]["value"]


def test_spec_get_user_by_id(spec):
    first = spec.get("/Users?count=1&startIndex=1").json()["Resources"][0]
    response = spec.get(f"/Users/{first['id']}")
    assert response.status_code == 200
    assert response.json()["id"] == first["id"]
    assert response.json()["emails"][0]["value"]


def test_spec_filter_on_an_invalid_user_finds_none(spec):
    response = spec.get(f'/Users?filter=userName eq "{unique("invalid")}@example.com"')
    assert response.status_code == 200
    assert_list_response(response.json())
    assert response.json()["totalResults"] == 0


def test_spec_unknown_user_id_is_a_404_error(spec):
    assert_error(spec.get(f"/Users/{unique('010101')}"), 404)


@pytest.mark.parametrize(
    "content_type", ["application/json", None], ids=["json-2024-export", "none-2016-export"]
)
def test_spec_create_with_realistic_values_is_201_and_active(server, spec, content_type):
    """The SPEC create step sends only Authorization and Accept (plus, in the 2024 export,
    ``Content-Type: application/json``)."""
    user_name = f"{unique('realistic')}@example.com"
    accept = {"Accept": "application/scim+json; charset=utf-8"}
    with server.client(accept, body_content_type=content_type) as runner:
        response = runner.post("/Users", json=spec_user(user_name))
    assert response.status_code == 201, response.text
    user = response.json()
    assert user["active"] is True and user["id"]
    assert (user["userName"], user["name"]["givenName"]) == (user_name, "Randy")
    assert spec.get(f"/Users/{user['id']}").json()["userName"] == user_name


def test_spec_recreating_the_same_user_is_409(spec):
    body = spec_user(f"{unique('again')}@example.com")
    assert spec.post("/Users", json=body).status_code == 201
    assert_error(spec.post("/Users", json=body), 409)


def test_spec_upper_cased_username_filter_finds_the_user(spec):
    user_name = f"{unique('caps')}@example.com"
    created = spec.post("/Users", json=spec_user(user_name)).json()
    response = spec.get(f'/Users?filter=userName eq "{user_name.upper()}"')
    assert response.status_code == 200
    assert [found["id"] for found in response.json()["Resources"]] == [created["id"]]


def test_spec_bare_username_as_the_filter_is_a_400(spec):
    """The 2016 SPEC export sends ``filter=<UPPER-CASED USERNAME>`` and expects 400."""
    response = spec.get(f"/Users?filter={unique('CAPS').upper()}@EXAMPLE.COM")
    assert_error(response, 400)
    assert response.json()["scimType"] == "invalidFilter"


def test_spec_groups_endpoint_lists_groups(spec, okta):
    """The server is shared by the module, so the count is compared before and after."""
    before = spec.get("/Groups", params={"count": 0}).json()["totalResults"]
    name = unique("Spec group")
    group = push_group(okta, name)
    response = spec.get("/Groups", params={"count": 1000})
    assert response.status_code == 200
    body = response.json()
    assert body["totalResults"] == before + 1
    assert group["id"] in [listed["id"] for listed in body["Resources"]]
    found = spec.get("/Groups", params={"filter": f'displayName eq "{name}"'}).json()
    assert (found["totalResults"], [g["id"] for g in found["Resources"]]) == (1, [group["id"]])


def test_spec_non_token_authorization_is_a_401_error(server):
    with server.client(SPEC_HEADERS) as client:
        response = client.get("/Users?count=1&startIndex=1",
                              headers={"Authorization": "non-token"})
    assert_error(response, 401)


def test_spec_numeric_id_that_does_not_exist_is_404(spec):
    assert_error(spec.get("/Users/00919288221112222"), 404)


@pytest.mark.parametrize("endpoint", ["ServiceProviderConfig", "ResourceTypes", "Schemas"])
def test_spec_optional_discovery_endpoints_answer(spec, endpoint):
    response = spec.get(f"/{endpoint}")
    assert response.status_code == 200
    body = response.json()
    if endpoint == "ServiceProviderConfig":
        for feature in ("patch", "bulk", "filter", "changePassword", "sort", "etag"):
            assert "supported" in body[feature]
        assert body["filter"]["maxResults"] and body["bulk"]["maxOperations"]
        assert body["authenticationSchemes"][0]["type"]
        assert body["authenticationSchemes"][0]["description"]
    else:
        assert live.LIST_RESPONSE in body["schemas"] and body["Resources"]


@pytest.mark.parametrize("endpoint", ["ServiceProviderConfig", "ResourceTypes", "Schemas"])
def test_spec_optional_discovery_endpoints_are_read_only(spec, endpoint):
    response = spec.post(f"/{endpoint}", content=b"test\r\n\r\n")
    assert_error(response, 405)


# -- transport (B1, B2, A7, A8) ---------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["application/scim+json; charset=utf-8", "application/scim+json", "application/json",
     "application/json; charset=utf-8", None],
)
def test_create_body_is_read_whatever_its_content_type(server, content_type):
    with server.client(OKTA_HEADERS, body_content_type=content_type) as client:
        response = client.post("/Users", json=okta_profile(f"{unique('ct')}@okta.local"))
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    "user_agent", ["Okta SCIM Client 1.0.0", "OKTA SCIM Integration", "curl/8.0", None]
)
def test_requests_are_not_gated_on_user_agent(server, user_agent):
    headers = {**OKTA_HEADERS, "User-Agent": user_agent} if user_agent else {}
    with server.client(headers) as client:
        if user_agent is None:
            del client.headers["User-Agent"]
        response = client.get("/Users?startIndex=1&count=2")
    assert response.status_code == 200


def test_connection_close_is_fine(okta):
    response = okta.get("/Users?startIndex=1&count=2", headers={"Connection": "close"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/Users?startIndex=1&count=2"), ("GET", "/Groups?startIndex=1&count=100"),
     ("GET", "/Users/00919288221112222"), ("POST", "/Users")],
)
def test_every_answer_is_scim_json(okta, method, path):
    body = okta_profile(f"{unique('type')}@okta.local") if method == "POST" else None
    response = okta.request(method, path, json=body)
    assert response.headers["Content-Type"].startswith("application/scim+json")


# -- retries and parallel traffic (PRODUCT: "many requests, in parallel ... and retry") -----


def test_retried_membership_patch_is_harmless(okta):
    users = [assign(okta, f"{unique('retry')}@okta.local") for _ in range(2)]
    group = push_group(okta, unique("Retried"))
    body = patch({"op": "remove", "path": f'members[value eq "{users[0]["id"]}"]'},
                 {"op": "add", "path": "members", "value": [member(u) for u in users]})
    for _ in range(2):
        assert okta.patch(f"/Groups/{group['id']}", json=body).status_code in (200, 204)
    assert member_ids(okta, group["id"]) == {u["id"] for u in users}


def in_parallel(server: live.LiveServer, calls: list[Any]) -> list[Any]:
    """Run ``call(client)`` for each call at once, each on its own connection."""

    def run(call: Any) -> Any:
        with server.client(OKTA_HEADERS, body_content_type=OKTA_BODY_TYPE) as client:
            return call(client)

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def test_parallel_assignments_all_succeed(server, okta):
    user_names = [f"{unique('parallel')}@okta.local" for _ in range(16)]
    responses = in_parallel(server, [
        lambda client, name=name: client.post("/Users", json=okta_profile(name))
        for name in user_names
    ])
    assert [r.status_code for r in responses] == [201] * len(user_names)
    for name in user_names:
        assert okta.get(lookup_url(name)).json()["totalResults"] == 1


def test_parallel_duplicate_creates_give_one_user_and_409s(server, okta):
    user_name = f"{unique('race')}@okta.local"
    responses = in_parallel(server, [
        lambda client: client.post("/Users", json=okta_profile(user_name))
        for _ in range(8)
    ])
    assert sorted(r.status_code for r in responses) == [201] + [409] * 7
    for response in responses:
        if response.status_code == 409:
            assert_error(response, 409)
    assert okta.get(lookup_url(user_name)).json()["totalResults"] == 1


def test_parallel_membership_patches_on_one_group_all_apply(server, okta):
    users = [assign(okta, f"{unique('crowd')}@okta.local") for _ in range(12)]
    group = push_group(okta, unique("Crowded"))
    responses = in_parallel(server, [
        lambda client, u=u: client.patch(f"/Groups/{group['id']}", json=patch(
            {"op": "add", "path": "members", "value": [member(u)]}))
        for u in users
    ])
    assert [r.status_code for r in responses] == [204] * len(users)
    assert member_ids(okta, group["id"]) == {u["id"] for u in users}
