"""Microsoft Entra ID's provisioning flows, replayed over HTTP against a real
``scim-bridge serve``.

Written from Microsoft's "Tutorial: Develop and plan provisioning for a SCIM endpoint"
(use-scim-to-provision-users-and-groups), "Known issues and resolutions with SCIM 2.0 protocol
compliance" (the ``aadOptscim062020`` flag) and the SCIM Validator / gallery validation tests.
The numbers (C16, A5, ...) are the items of ``idp-quirks.md``. Entra sends no Accept header of
its own and bodies as ``application/scim+json; charset=utf-8`` (C2).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from . import live
from .live import assert_error, assert_list_response, session_is_active, start_session, unique

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
MS_GROUP = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
EMPLOYEE_NUMBER = f"{ENTERPRISE}:employeeNumber"
MANAGER = f"{ENTERPRISE}:manager"


@pytest.fixture(scope="module")
def entra(server: live.LiveServer) -> Any:
    with server.client({}, drop_default_accept=True) as client:
        yield client


@pytest.fixture(scope="module")
def application(server: live.LiveServer) -> Any:
    with server.application() as client:
        yield client


# -- what Entra sends -------------------------------------------------------------------------


def entra_user(**changes: Any) -> dict[str, Any]:
    """The tutorial's Create User body (C9): core + enterprise schemas, meta, roles: []."""
    tag = uuid.uuid4()
    body: dict[str, Any] = {
        "schemas": [CORE_USER, ENTERPRISE],
        "externalId": str(uuid.uuid4()),
        "userName": f"Test_User_{tag}",
        "active": True,
        "emails": [{"primary": True, "type": "work", "value": f"Test_User_{tag}@testuser.com"}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "givenName familyName", "familyName": "familyName",
                 "givenName": "givenName"},
        "roles": [],
    }
    body.update(changes)
    return body


def create_user(entra: Any, **changes: Any) -> dict[str, Any]:
    response = entra.post("/Users", json=entra_user(**changes))
    assert response.status_code == 201, response.text
    return response.json()


def create_group(entra: Any, name: str | None = None) -> dict[str, Any]:
    """The tutorial's Create Group body (C11): a non-URN Microsoft schema, meta, no members."""
    response = entra.post("/Groups", json={
        "schemas": [CORE_GROUP, MS_GROUP],
        "externalId": str(uuid.uuid4()),
        "displayName": name or unique("displayName"),
        "meta": {"resourceType": "Group"},
    })
    assert response.status_code == 201, response.text
    return response.json()


def patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def read(entra: Any, path: str) -> dict[str, Any]:
    response = entra.get(path)
    assert response.status_code == 200, response.text
    return response.json()


def query(entra: Any, resource: str, filter_text: str, **params: str) -> list[dict[str, Any]]:
    response = entra.get(f"/{resource}", params={"filter": filter_text, **params})
    assert response.status_code == 200, response.text
    body = response.json()
    assert_list_response(body)
    return body["Resources"]


def patch_user(entra: Any, user: dict[str, Any], *operations: dict[str, Any]) -> dict[str, Any]:
    """A user PATCH answers 200 with the user (A9); returns the user read back by GET."""
    response = entra.patch(f"/Users/{user['id']}", json=patch(*operations))
    assert response.status_code == 200, response.text
    assert response.json()["id"] == user["id"]
    return read(entra, f"/Users/{user['id']}")


def patch_group(entra: Any, group: dict[str, Any], *operations: dict[str, Any]) -> None:
    """A group PATCH answers 204 without a body (C31, A9)."""
    response = entra.patch(f"/Groups/{group['id']}", json=patch(*operations))
    assert response.status_code == 204, response.text
    assert response.content == b""


def member_ids(entra: Any, group: dict[str, Any]) -> set[str]:
    return {m["value"] for m in read(entra, f"/Groups/{group['id']}").get("members") or []}


# -- Test Connection (C4, A2) -----------------------------------------------------------------


def test_test_connection_filter_on_a_random_guid_is_an_empty_list_response(entra):
    response = entra.get(f"/Users?filter=userName+eq+%22{uuid.uuid4()}%22")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/scim+json")
    body = response.json()
    assert_list_response(body)
    assert (body["totalResults"], body["Resources"]) == (0, [])


def test_random_group_probe_is_an_empty_list_response(entra):
    response = entra.get(
        f"/Groups?excludedAttributes=members&filter=displayName+eq+%22{uuid.uuid4()}%22")
    assert response.status_code == 200
    assert (response.json()["totalResults"], response.json()["Resources"]) == (0, [])


# -- Create User (C9, C10) --------------------------------------------------------------------


def test_create_user_is_201_and_echoes_username_and_external_id(entra):
    body = entra_user()
    response = entra.post("/Users", json=body)
    assert response.status_code == 201
    user = response.json()
    assert user["id"]
    assert (user["userName"], user["externalId"]) == (body["userName"], body["externalId"])
    assert user["name"]["formatted"] == "givenName familyName"
    assert user["emails"] == body["emails"]
    assert user["meta"]["resourceType"] == "User"
    assert "roles" not in user


def test_legacy_create_with_nulls_and_a_mistyped_extension_urn_is_accepted(entra):
    """The old tutorial's "Example 2" (C10): nulls mean absent; unknown schemas are ignored."""
    user_name = f"{unique('jyoung')}@testuser.com"
    response = entra.post("/Users", json={
        "schemas": [CORE_USER, "urn:ietf:params:scim:schemas:extension:enterprise:2.0User"],
        "externalId": unique("jyoung"),
        "userName": user_name,
        "active": True,
        "addresses": None,
        "displayName": "Joy Young",
        "emails": [{"type": "work", "value": user_name, "primary": True}],
        "meta": {"resourceType": "User"},
        "name": {"familyName": "Young", "givenName": "Joy"},
        "phoneNumbers": None,
        "preferredLanguage": None,
        "title": None,
        "department": None,
        "manager": None,
    })
    assert response.status_code == 201, response.text
    user = response.json()
    assert user["displayName"] == "Joy Young"
    for absent in ("addresses", "phoneNumbers", "preferredLanguage", "title"):
        assert absent not in user
    assert "manager" not in user.get(ENTERPRISE, {})


# -- Get User and queries (C5, C7, A2, A4) ---------------------------------------------------


def test_get_user_by_id(entra):
    user = create_user(entra)
    fetched = read(entra, f"/Users/{user['id']}")
    assert fetched["id"] == user["id"] and fetched["userName"] == user["userName"]


def test_get_of_an_unknown_user_is_a_404_error(entra):
    assert_error(entra.get("/Users/5171a35d82074e068ce2"), 404)


@pytest.mark.parametrize(
    "filter_for",
    [
        lambda user: f'userName eq "{user["userName"]}"',
        lambda user: f'userName eq "{user["userName"].upper()}"',
        lambda user: f'externalId eq "{user["externalId"]}"',
        lambda user: f'emails[type eq "work"].value eq "{user["emails"][0]["value"]}"',
        lambda user: f'emails[type eq "work"] eq "{user["emails"][0]["value"]}"',
    ],
    ids=["userName", "userName-other-case", "externalId", "work-email", "malformed-work-email"],
)
def test_query_by_a_matching_attribute_finds_the_user(entra, filter_for):
    user = create_user(entra)
    assert [found["id"] for found in query(entra, "Users", filter_for(user))] == [user["id"]]


@pytest.mark.parametrize(
    "user_name",
    ['CONTOSO\\jdoe', 'o"neil@contoso.com', "Jöns.Ström@contoso.com", "tab\tin@contoso.com"],
    ids=["backslash", "quote", "non-ascii", "control"],
)
def test_query_finds_a_username_written_as_a_json_string(entra, user_name):
    """Filter values are JSON strings (RFC 7644 §3.4.2.2): quotes and backslashes escaped,
    non-ASCII possibly as \\u escapes."""
    user = create_user(entra, userName=f"{unique('x')}-{user_name}")
    found = query(entra, "Users", f"userName eq {json.dumps(user['userName'])}")
    assert [u["id"] for u in found] == [user["id"]]


def test_legacy_unquoted_external_id_is_read_as_a_string(entra):
    """C7, and our policy: a bare value after an operator is read as a quoted string."""
    external_id = unique("jyoung").replace("-", "")
    user = create_user(entra, externalId=external_id)
    assert [found["id"] for found in query(entra, "Users", f"externalId eq {external_id}")] == [
        user["id"]]


def test_query_miss_is_200_with_an_empty_list(entra):
    response = entra.get("/Users", params={"filter": 'userName eq "non-existent user"'})
    assert response.status_code == 200
    assert_list_response(response.json())
    assert response.json()["totalResults"] == 0


def test_query_with_a_work_email_that_nobody_has_finds_nobody(entra):
    create_user(entra)
    assert query(entra, "Users", f'emails[type eq "work"].value eq "{uuid.uuid4()}@x.com"') == []


# -- Update User: multi-valued and single-valued (C12, C16–C19, C36) -------------------------


def test_multi_valued_update_replaces_the_work_email_and_family_name(entra):
    user = create_user(entra)
    updated = patch_user(
        entra, user,
        {"op": "Replace", "path": 'emails[type eq "work"].value',
         "value": "updatedEmail@microsoft.com"},
        {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
    )
    assert updated["emails"] == [
        {"value": "updatedEmail@microsoft.com", "type": "work", "primary": True}]
    assert updated["name"]["familyName"] == "updatedFamilyName"
    assert updated["name"]["givenName"] == "givenName"


def test_single_valued_update_replaces_the_username(entra):
    user = create_user(entra)
    new_name = f"{uuid.uuid4()}@testuser.com"
    response = entra.patch(f"/Users/{user['id']}",
                           json=patch({"op": "Replace", "path": "userName", "value": new_name}))
    assert response.status_code == 200
    assert response.json()["userName"] == new_name


def test_several_replace_operations_apply_in_order_without_the_flag(entra):
    user = create_user(entra)
    updated = patch_user(
        entra, user,
        {"op": "Replace", "path": "displayName", "value": "Pvlo"},
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "Tb@test.microsoft.com"},
        {"op": "Replace", "path": "name.givenName", "value": "Gtfd"},
        {"op": "Replace", "path": "name.familyName", "value": "Pkqf"},
        {"op": "Replace", "path": "externalId", "value": "Eqpj-" + user["id"]},
        {"op": "Replace", "path": EMPLOYEE_NUMBER, "value": "Eqpj"},
        {"op": "Replace", "path": "displayName", "value": "Pvlo again"},
    )
    assert updated["displayName"] == "Pvlo again"
    assert updated["emails"][0]["value"] == "Tb@test.microsoft.com"
    assert (updated["name"]["givenName"], updated["name"]["familyName"]) == ("Gtfd", "Pkqf")
    assert updated["externalId"] == "Eqpj-" + user["id"]
    assert updated[ENTERPRISE]["employeeNumber"] == "Eqpj"


def test_flag_combines_replacements_into_one_pathless_op_keyed_by_paths(entra):
    user = create_user(entra)
    updated = patch_user(
        entra, user,
        {"op": "replace", "path": 'emails[type eq "work"].value', "value": "Tm@test.microsoft.com"},
        {"op": "replace", "value": {
            "displayName": "Bjfe",
            "name.givenName": "Kkom",
            "name.familyName": "Unua",
            EMPLOYEE_NUMBER: "Aklq",
        }},
    )
    assert updated["displayName"] == "Bjfe"
    assert updated["name"] == {"formatted": "givenName familyName", "givenName": "Kkom",
                               "familyName": "Unua"}
    assert "name.givenName" not in updated
    assert updated[ENTERPRISE]["employeeNumber"] == "Aklq"
    assert updated["emails"][0]["value"] == "Tm@test.microsoft.com"


def test_pathless_add_with_dotted_keys_works_like_replace(entra):
    user = create_user(entra)
    updated = patch_user(entra, user, {"op": "add", "value": {
        "name.middleName": "Mid", "title": "Engineer", EMPLOYEE_NUMBER: "7"}})
    assert updated["name"]["middleName"] == "Mid"
    assert updated["title"] == "Engineer"
    assert updated[ENTERPRISE]["employeeNumber"] == "7"


@pytest.mark.parametrize("op", ["Add", "add"])
def test_add_of_a_single_valued_string_sets_it(entra, op):
    user = create_user(entra)
    assert patch_user(entra, user, {"op": op, "path": "nickName", "value": "Babs"})[
        "nickName"] == "Babs"


def test_add_on_a_single_valued_attribute_that_has_a_value_replaces_it(entra):
    user = create_user(entra, title="Old title")
    assert patch_user(entra, user, {"op": "Add", "path": "title", "value": "New title"})[
        "title"] == "New title"


@pytest.mark.parametrize("op", ["Add", "Replace", "add", "replace"])
@pytest.mark.parametrize(
    ("path", "value", "element"),
    [
        ('emails[type eq "other"].value', "proxy@contoso.com",
         {"type": "other", "value": "proxy@contoso.com"}),
        ('phoneNumbers[type eq "mobile"].value', "55555555555",
         {"type": "mobile", "value": "55555555555"}),
        ('phoneNumbers[type eq "fax"].value', "+1 (555) 555-0100",
         {"type": "fax", "value": "+1 (555) 555-0100"}),
        ('addresses[type eq "work"].streetAddress', "1 Microsoft Way",
         {"type": "work", "streetAddress": "1 Microsoft Way"}),
        ('addresses[type eq "work"].postalCode', "98052",
         {"type": "work", "postalCode": "98052"}),
        ('addresses[type eq "work"].country', "US", {"type": "work", "country": "US"}),
        ('addresses[type eq "other"].formatted', "Building 92",
         {"type": "other", "formatted": "Building 92"}),
    ],
    ids=["other-email", "mobile", "fax", "street", "postal-code", "country", "office"],
)
def test_value_filter_path_creates_the_element_it_does_not_find(entra, op, path, value, element):
    """C18: create-on-miss instead of 400 noTarget; values are stored as sent (C21)."""
    user = create_user(entra)
    attribute = path.split("[")[0]
    updated = patch_user(entra, user, {"op": op, "path": path, "value": value})
    assert element in updated[attribute]


def test_address_paths_in_one_patch_build_one_work_address(entra):
    user = create_user(entra)
    updated = patch_user(
        entra, user,
        {"op": "Add", "path": 'addresses[type eq "work"].streetAddress', "value": "1 Way"},
        {"op": "Add", "path": 'addresses[type eq "work"].postalCode', "value": "98052"},
        {"op": "Add", "path": 'addresses[type eq "work"].country', "value": "US"},
        {"op": "Add", "path": 'addresses[type eq "work"].formatted', "value": "1 Way, US"},
    )
    assert updated["addresses"] == [{"type": "work", "streetAddress": "1 Way",
                                     "postalCode": "98052", "country": "US",
                                     "formatted": "1 Way, US"}]


def test_replacing_the_work_email_never_adds_a_second_work_email(entra):
    """The ``type`` values inside one multi-valued attribute are unique (C18)."""
    user = create_user(entra)
    for address in ("a@contoso.com", "b@contoso.com"):
        updated = patch_user(entra, user, {"op": "Replace",
                                           "path": 'emails[type eq "work"].value',
                                           "value": address})
    assert [e["value"] for e in updated["emails"] if e.get("type") == "work"] == ["b@contoso.com"]


# -- Disable, delete, restore (C13–C15, C33, A5) ---------------------------------------------


@pytest.mark.parametrize(
    ("op", "value"),
    [("Replace", "False"), ("Replace", "false"), ("replace", False), ("Replace", False),
     ("Add", False), ("Add", "False")],
    ids=["default-string", "lowercase-string", "flag-boolean", "tutorial-boolean",
         "add-boolean", "add-string"],
)
def test_disable_sets_active_false(entra, op, value):
    user = create_user(entra)
    updated = patch_user(entra, user, {"op": op, "path": "active", "value": value})
    assert updated["active"] is False


def test_tutorial_disable_body_with_operations_before_schemas(entra):
    user = create_user(entra)
    body = {"Operations": [{"op": "Replace", "path": "active", "value": False}],
            "schemas": [PATCH_OP]}
    response = entra.patch(f"/Users/{user['id']}", json=body)
    assert response.status_code == 200
    assert response.json()["active"] is False


def test_disabled_user_is_still_found_by_get_and_by_filter(entra):
    user = create_user(entra)
    patch_user(entra, user, {"op": "Replace", "path": "active", "value": "False"})
    assert read(entra, f"/Users/{user['id']}")["active"] is False
    found = query(entra, "Users", f'userName eq "{user["userName"]}"')
    assert [(u["id"], u["active"]) for u in found] == [(user["id"], False)]


def test_disable_with_the_string_false_ends_the_users_sessions(entra, application):
    user = create_user(entra)
    token = start_session(application, user["id"])
    patch_user(entra, user, {"op": "Replace", "path": "active", "value": "False"})
    assert not session_is_active(application, token)


@pytest.mark.parametrize("value", ["True", "true", True])
def test_restore_from_soft_delete_sets_active_true(entra, value):
    user = create_user(entra)
    patch_user(entra, user, {"op": "Replace", "path": "active", "value": "False"})
    assert patch_user(entra, user, {"op": "Replace", "path": "active", "value": value})[
        "active"] is True


def test_delete_user_is_204_and_the_user_is_gone(entra):
    user = create_user(entra)
    response = entra.delete(f"/Users/{user['id']}")
    assert (response.status_code, response.content) == (204, b"")
    assert_error(entra.get(f"/Users/{user['id']}"), 404)
    assert query(entra, "Users", f'userName eq "{user["userName"]}"') == []


def test_deleting_a_user_ends_their_sessions(entra, application):
    user = create_user(entra)
    token = start_session(application, user["id"])
    assert entra.delete(f"/Users/{user['id']}").status_code == 204
    assert not session_is_active(application, token)

def test_deleted_username_can_be_created_again(entra):
    """The gallery's Restore_User_Test: unassign deletes, re-assign creates again (C33)."""
    user = create_user(entra)
    entra.delete(f"/Users/{user['id']}")
    again = entra.post("/Users", json=entra_user(userName=user["userName"],
                                                 externalId=user["externalId"]))
    assert again.status_code == 201, again.text
    assert again.json()["id"] != user["id"]


# -- Groups (C6, C11, C28–C31, A12) ----------------------------------------------------------


def test_create_group_with_the_microsoft_schema_is_201(entra):
    name = unique("displayName")
    group = create_group(entra, name)
    assert group["id"] and group["displayName"] == name
    assert group["meta"]["resourceType"] == "Group"
    assert group.get("members", []) == []


def test_get_group_excluding_members_leaves_them_out(entra):
    user = create_user(entra)
    group = create_group(entra)
    patch_group(entra, group, {"op": "Add", "path": "members",
                               "value": [{"$ref": None, "value": user["id"]}]})
    fetched = read(entra, f"/Groups/{group['id']}?excludedAttributes=members")
    assert "members" not in fetched
    assert (fetched["id"], fetched["displayName"]) == (group["id"], group["displayName"])


def test_get_group_by_display_name_excluding_members(entra):
    user = create_user(entra)
    group = create_group(entra)
    patch_group(entra, group, {"op": "Add", "path": "members",
                               "value": [{"$ref": None, "value": user["id"]}]})
    found = query(entra, "Groups", f'displayName eq "{group["displayName"]}"',
                  excludedAttributes="members")
    assert [g["id"] for g in found] == [group["id"]]
    assert "members" not in found[0]


@pytest.mark.parametrize(
    "name", ['Sales "EMEA"', "R&D \\ Ops", "Team [ops] (east)", "Fraser's Group", "Équipe"],
)
def test_get_group_by_a_display_name_with_special_characters(entra, name):
    group = create_group(entra, f"{name} {uuid.uuid4().hex[:6]}")
    found = query(entra, "Groups", f"displayName eq {json.dumps(group['displayName'])}",
                  excludedAttributes="members")
    assert [g["id"] for g in found] == [group["id"]]


def test_rename_group_is_204(entra):
    group = create_group(entra)
    new_name = unique("updatedDisplayName")
    patch_group(entra, group, {"op": "Replace", "path": "displayName", "value": new_name})
    assert read(entra, f"/Groups/{group['id']}")["displayName"] == new_name


def test_add_several_members_with_null_refs_in_one_patch(entra):
    users = [create_user(entra) for _ in range(3)]
    group = create_group(entra)
    patch_group(entra, group, {"op": "Add", "path": "members",
                               "value": [{"$ref": None, "value": u["id"]} for u in users]})
    assert member_ids(entra, group) == {u["id"] for u in users}


@pytest.mark.parametrize(
    "listed",
    [lambda uid: {"$ref": None, "value": uid}, lambda uid: {"value": uid}],
    ids=["tutorial-null-ref", "compatibility-page"],
)
def test_remove_with_a_value_list_removes_only_the_listed_members(entra, listed):
    leaving, staying = create_user(entra), create_user(entra)
    group = create_group(entra)
    patch_group(entra, group, {"op": "Add", "path": "members",
                               "value": [{"value": leaving["id"]}, {"value": staying["id"]}]})
    patch_group(entra, group, {"op": "Remove", "path": "members",
                               "value": [listed(leaving["id"])]})
    assert member_ids(entra, group) == {staying["id"]}


def test_remove_with_a_member_filter_path_removes_that_member(entra):
    leaving, staying = create_user(entra), create_user(entra)
    group = create_group(entra)
    patch_group(entra, group, {"op": "add", "path": "members",
                               "value": [{"value": leaving["id"]}, {"value": staying["id"]}]})
    patch_group(entra, group, {"op": "remove", "path": f'members[value eq "{leaving["id"]}"]'})
    assert member_ids(entra, group) == {staying["id"]}


def test_removed_member_loses_their_sessions(entra, application):
    user = create_user(entra)
    group = create_group(entra)
    patch_group(entra, group, {"op": "Add", "path": "members", "value": [{"value": user["id"]}]})
    token = start_session(application, user["id"])
    patch_group(entra, group, {"op": "Remove", "path": "members",
                               "value": [{"$ref": None, "value": user["id"]}]})
    assert not session_is_active(application, token)


def test_delete_group_is_204_and_the_group_is_gone(entra):
    group = create_group(entra)
    response = entra.delete(f"/Groups/{group['id']}")
    assert (response.status_code, response.content) == (204, b"")
    assert_error(entra.get(f"/Groups/{group['id']}"), 404)
    assert query(entra, "Groups", f'displayName eq "{group["displayName"]}"') == []


def test_deleting_a_group_ends_its_members_sessions(entra, application):
    user = create_user(entra)
    group = create_group(entra)
    patch_group(entra, group, {"op": "Add", "path": "members", "value": [{"value": user["id"]}]})
    token = start_session(application, user["id"])
    assert entra.delete(f"/Groups/{group['id']}").status_code == 204
    assert not session_is_active(application, token)


# -- Manager (C24–C27, C8) --------------------------------------------------------------------


def manager_of(user: dict[str, Any]) -> Any:
    """The manager as Entra reads it back: ``manager.value`` under the enterprise URN (C25)."""
    manager = user.get(ENTERPRISE, {}).get("manager")
    if manager is None:
        return None
    assert isinstance(manager, dict), f"manager must be complex, got {manager!r}"
    return manager["value"]


@pytest.mark.parametrize(
    "operation",
    [
        lambda mgr: {"op": "Add", "path": MANAGER, "value": mgr["id"]},
        lambda mgr: {"op": "add", "path": MANAGER, "value": mgr["id"]},
        lambda mgr: {"op": "Add", "path": "manager",
                     "value": [{"$ref": mgr["meta"]["location"], "value": mgr["id"]}]},
        lambda mgr: {"op": "add", "value": {MANAGER: mgr["id"]}},
    ],
    ids=["validator-plain-string", "flag-plain-string", "legacy-ref", "pathless-urn-key"],
)
def test_manager_is_set_and_read_back_as_a_complex_value(entra, operation):
    manager, user = create_user(entra), create_user(entra)
    assert manager_of(patch_user(entra, user, operation(manager))) == manager["id"]


def test_manager_is_changed_with_replace(entra):
    first, second, user = create_user(entra), create_user(entra), create_user(entra)
    patch_user(entra, user, {"op": "Add", "path": MANAGER, "value": first["id"]})
    changed = patch_user(entra, user, {"op": "replace", "path": MANAGER, "value": second["id"]})
    assert manager_of(changed) == second["id"]


def test_manager_is_cleared_with_an_empty_string(entra):
    manager, user = create_user(entra), create_user(entra)
    patch_user(entra, user, {"op": "Add", "path": MANAGER, "value": manager["id"]})
    cleared = patch_user(entra, user, {"op": "replace", "path": MANAGER, "value": ""})
    assert manager_of(cleared) is None


def test_manager_is_complex_in_list_responses_too(entra):
    manager, user = create_user(entra), create_user(entra)
    patch_user(entra, user, {"op": "Add", "path": MANAGER, "value": manager["id"]})
    found = query(entra, "Users", f'userName eq "{user["userName"]}"')
    assert manager_of(found[0]) == manager["id"]


@pytest.mark.parametrize("quote", ['"', ""], ids=["quoted", "legacy-unquoted"])
def test_reference_check_by_id_and_manager_returns_only_the_id(entra, quote):
    manager, user = create_user(entra), create_user(entra)
    patch_user(entra, user, {"op": "Add", "path": MANAGER, "value": manager["id"]})
    found = query(entra, "Users",
                  f"id eq {quote}{user['id']}{quote} and manager eq {quote}{manager['id']}{quote}",
                  attributes="id")
    assert [resource["id"] for resource in found] == [user["id"]]
    assert set(found[0]) <= {"id", "schemas"}


def test_reference_check_with_another_manager_finds_nothing(entra):
    manager, other, user = create_user(entra), create_user(entra), create_user(entra)
    patch_user(entra, user, {"op": "Add", "path": MANAGER, "value": manager["id"]})
    assert query(entra, "Users", f"id eq {user['id']} and manager eq {other['id']}",
                 attributes="id") == []


@pytest.mark.parametrize("quote", ['"', ""], ids=["quoted", "legacy-unquoted"])
def test_group_reference_check_by_id_and_member(entra, quote):
    user, outsider = create_user(entra), create_user(entra)
    group = create_group(entra)
    patch_group(entra, group, {"op": "Add", "path": "members", "value": [{"value": user["id"]}]})
    check = "id eq {q}{gid}{q} and members eq {q}{uid}{q}"
    found = query(entra, "Groups", check.format(q=quote, gid=group["id"], uid=user["id"]),
                  attributes="id")
    assert [resource["id"] for resource in found] == [group["id"]]
    assert query(entra, "Groups", check.format(q=quote, gid=group["id"], uid=outsider["id"]),
                 attributes="id") == []


# -- Schema discovery (C35, C32) --------------------------------------------------------------

CAMEL_CASE_VALUES = {
    "type": {"string", "boolean", "decimal", "integer", "dateTime", "reference", "complex",
             "binary"},
    "mutability": {"readOnly", "readWrite", "immutable", "writeOnly"},
    "returned": {"always", "never", "default", "request"},
    "uniqueness": {"none", "server", "global"},
}


def walk_json(value: Any) -> Any:
    """Every (key, value) pair in a JSON document, depth first."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key, item
            yield from walk_json(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk_json(item)


@pytest.fixture(scope="module")
def schemas(entra: Any) -> dict[str, Any]:
    response = entra.get("/Schemas")
    assert response.status_code == 200
    return response.json()


def test_schema_discovery_is_a_list_response(schemas):
    assert_list_response(schemas)


def test_schema_discovery_includes_user_enterprise_and_group(schemas):
    ids = {schema["id"] for schema in schemas["Resources"]}
    assert {CORE_USER, ENTERPRISE, CORE_GROUP} <= ids


def test_schema_discovery_has_no_nulls(schemas):
    assert [key for key, value in walk_json(schemas) if value is None] == []


def test_schema_discovery_values_are_camel_case(schemas):
    for key, value in walk_json(schemas):
        if key in CAMEL_CASE_VALUES and isinstance(value, str):
            assert value in CAMEL_CASE_VALUES[key], f"{key}: {value!r}"


def test_schema_discovery_describes_the_attributes_entra_maps(schemas):
    """Entra flattens /Schemas into paths such as ``emails[type eq "work"].value``."""
    user = next(s for s in schemas["Resources"] if s["id"] == CORE_USER)
    attributes = {a["name"]: a for a in user["attributes"]}
    for name, sub in [("emails", "value"), ("phoneNumbers", "value"),
                      ("addresses", "streetAddress"), ("addresses", "postalCode"),
                      ("name", "givenName")]:
        assert sub in {s["name"] for s in attributes[name]["subAttributes"]}
    email_types = next(s for s in attributes["emails"]["subAttributes"] if s["name"] == "type")
    assert "work" in email_types["canonicalValues"]
    enterprise = next(s for s in schemas["Resources"] if s["id"] == ENTERPRISE)
    assert {"employeeNumber", "department", "manager"} <= {
        a["name"] for a in enterprise["attributes"]}


# -- Pagination with count=5 (the gallery's pagination tests) --------------------------------


@pytest.mark.parametrize("resource", ["Users", "Groups"])
def test_pagination_with_count_5_echoes_start_index_on_every_page(entra, resource):
    for _ in range(11):
        create_user(entra) if resource == "Users" else create_group(entra)
    total = read(entra, f"/{resource}?count=0")["totalResults"]
    seen: list[str] = []
    for page in range(3):
        start = page * 5 + 1
        body = read(entra, f"/{resource}?startIndex={start}&count=5")
        assert_list_response(body)
        assert (body["startIndex"], body["totalResults"]) == (start, total)
        assert body["itemsPerPage"] == len(body["Resources"]) == 5
        seen += [resource["id"] for resource in body["Resources"]]
    assert len(seen) == len(set(seen)) == 15


# -- The SCIM Validator's cases (C20, C22, C38, C39) -----------------------------------------


def test_null_update_clears_attributes_with_empty_strings_then_nulls(entra):
    """SCIM_Null_Update_Test: replace with "" and then a path-less replace with nulls; the
    attributes read back absent."""
    user = create_user(entra, title="Title", nickName="Nick", displayName="Display",
                       preferredLanguage="en-US", **{ENTERPRISE: {"department": "Ops"}})
    paths = ["title", "nickName", "displayName", "preferredLanguage", "name.givenName",
             f"{ENTERPRISE}:department"]
    emptied = patch_user(entra, user, *({"op": "replace", "path": p, "value": ""} for p in paths))
    nulled = patch_user(entra, user, {"op": "replace", "value": dict.fromkeys(paths)})
    for readback in (emptied, nulled):
        for absent in ("title", "nickName", "displayName", "preferredLanguage"):
            assert absent not in readback, absent
        assert readback["name"] == {"formatted": "givenName familyName",
                                    "familyName": "familyName"}
        assert ENTERPRISE not in readback, readback.get(ENTERPRISE)
        assert readback["userName"] == user["userName"]


@pytest.mark.parametrize(
    "operation",
    [{"op": "remove", "path": "userName"}, {"op": "replace", "path": "userName", "value": ""},
     {"op": "replace", "value": {"userName": None}}],
    ids=["remove", "empty-string", "pathless-null"],
)
def test_clearing_the_required_username_is_refused_and_changes_nothing(entra, operation):
    user = create_user(entra)
    response = entra.patch(f"/Users/{user['id']}", json=patch(operation))
    assert_error(response, 400)
    assert read(entra, f"/Users/{user['id']}")["userName"] == user["userName"]


def test_empty_operations_list_is_a_no_op(entra):
    """C22: Microsoft's SCIM Validator sends ``"Operations": []`` and fails a server that
    refuses it (scimmyjs/scimmy#59, #90). RFC 7644 §3.5.2 asks for one or more operations;
    we accept none as "change nothing": 200 with the unchanged user, version kept."""
    user = create_user(entra)
    response = entra.patch(f"/Users/{user['id']}", json=patch())
    assert response.status_code == 200, response.text
    assert response.json() == user
    assert read(entra, f"/Users/{user['id']}") == user


def test_empty_operations_list_on_a_group_is_a_no_op(entra):
    group = create_group(entra)
    patch_group(entra, group, {"op": "Add", "path": "members",
                               "value": [{"value": create_user(entra)["id"]}]})
    before = read(entra, f"/Groups/{group['id']}")
    patch_group(entra, group)
    assert read(entra, f"/Groups/{group['id']}") == before


def test_user_is_created_again_after_a_rename_without_409(entra):
    user = create_user(entra)
    patch_user(entra, user, {"op": "Replace", "path": "userName", "value": unique("renamed")})
    again = entra.post("/Users", json=entra_user(userName=user["userName"]))
    assert again.status_code == 201, again.text


@pytest.mark.parametrize("primary", ["true", "True", True])
def test_primary_sent_as_a_string_is_read_as_a_boolean(entra, primary):
    user = create_user(entra, emails=[{"type": "work", "value": "p@contoso.com",
                                       "primary": primary}])
    assert user["emails"][0]["primary"] is True


@pytest.mark.parametrize("timezone", ["America/Los_Angeles", "UTC+05:30",
                                      "(UTC-08:00) Pacific Time (US & Canada)"])
def test_time_zone_is_stored_as_sent(entra, timezone):
    user = create_user(entra, timezone=timezone)
    assert read(entra, f"/Users/{user['id']}")["timezone"] == timezone


def test_patched_values_read_back_exactly_as_sent(entra):
    """SCIM_User_Update_Test: PATCH, then GET must match (C21: no normalisation)."""
    user = create_user(entra)
    values = {"displayName": "  Ünïcode Name ", "title": "VP, R&D", "userType": "Employee",
              "preferredLanguage": "de-CH", "locale": "de-CH", "profileUrl": "https://x.test/p"}
    updated = patch_user(entra, user, *({"op": "Replace", "path": k, "value": v}
                                        for k, v in values.items()))
    assert {key: updated[key] for key in values} == values


def test_user_patch_answers_200_with_the_full_user(entra):
    user = create_user(entra)
    response = entra.patch(f"/Users/{user['id']}",
                           json=patch({"op": "Replace", "path": "title", "value": "Lead"}))
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["userName"], body["title"]) == (user["id"], user["userName"], "Lead")
    assert body["meta"]["resourceType"] == "User"


# -- Tolerant reading (issue 3 item 1) and response media type (A7, A8, C2) ------------------


@pytest.mark.parametrize(
    "accept",
    [None, "*/*", "application/scim+json", "application/json", "text/html", "application/xml",
     "text/plain; q=0.5"],
)
def test_any_accept_header_gets_a_scim_json_answer(server, accept):
    with server.client({"Accept": accept} if accept else {}, drop_default_accept=True) as client:
        response = client.get("/Users?startIndex=1&count=1")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/scim+json")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/Users?filter=userName+eq+%22nobody%22", None),
        ("GET", "/Users/not-there", None),
        ("GET", "/Users?filter=userName+zz+%22x%22", None),
        ("GET", "/Groups?excludedAttributes=members", None),
        ("GET", "/Schemas", None),
        ("GET", "/ServiceProviderConfig", None),
        ("GET", "/ResourceTypes", None),
        ("POST", "/Users", {"schemas": [CORE_USER]}),
        ("PATCH", "/Users/not-there", patch({"op": "Replace", "path": "title", "value": "x"})),
        ("POST", "/Groups", {"displayName": None}),
    ],
    ids=["query", "404", "bad-filter", "groups", "schemas", "config", "resource-types",
         "400-create", "404-patch", "400-group"],
)
def test_every_answer_is_scim_json(entra, method, path, body):
    response = entra.request(method, path, json=body)
    assert response.headers["Content-Type"].startswith("application/scim+json"), response.text


def test_unauthorised_request_is_a_scim_json_401(server):
    with server.client({}, token="not-a-real-token") as client:
        response = client.get("/Users")
    assert_error(response, 401)


def test_attribute_names_in_any_case_are_read(entra):
    user_name = unique("AnyCase")
    response = entra.post("/Users", json={
        "Schemas": [CORE_USER], "USERNAME": user_name, "Active": "true",
        "Name": {"GivenName": "Ann", "FAMILYNAME": "Case"},
        "Emails": [{"Value": "ann@contoso.com", "Type": "work", "Primary": "True"}],
    })
    assert response.status_code == 201, response.text
    user = response.json()
    assert (user["userName"], user["active"]) == (user_name, True)
    assert user["name"] == {"givenName": "Ann", "familyName": "Case"}
    assert user["emails"] == [{"value": "ann@contoso.com", "type": "work", "primary": True}]


def test_patch_structure_and_paths_in_any_case_are_read(entra):
    user = create_user(entra)
    response = entra.patch(f"/Users/{user['id']}", json={
        "SCHEMAS": [PATCH_OP],
        "operations": [
            {"OP": "REPLACE", "Path": "NAME.FAMILYNAME", "Value": "Upper"},
            {"Op": "Add", "PATH": 'Emails[Type eq "work"].Value', "VALUE": "up@contoso.com"},
        ],
    })
    assert response.status_code == 200, response.text
    assert response.json()["name"]["familyName"] == "Upper"
    assert response.json()["emails"][0]["value"] == "up@contoso.com"


def test_patch_without_schemas_is_accepted(entra):
    user = create_user(entra)
    response = entra.patch(f"/Users/{user['id']}",
                           json={"Operations": [{"op": "Replace", "path": "title", "value": "T"}]})
    assert response.status_code == 200
    assert response.json()["title"] == "T"


@pytest.mark.parametrize("content_type", [None, "application/json",
                                          "application/scim+json; charset=utf-8"])
def test_patch_body_is_read_whatever_its_content_type(server, entra, content_type):
    user = create_user(entra)
    with server.client({}, body_content_type=content_type) as client:
        response = client.patch(f"/Users/{user['id']}",
                                json=patch({"op": "Replace", "path": "title", "value": "CT"}))
    assert response.status_code == 200, response.text
    assert response.json()["title"] == "CT"

