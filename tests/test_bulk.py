"""SCIM Bulk (RFC 7644 §3.7): bulkId references, failOnErrors, maxOperations, and operations
that stand alone: one that fails is reported in its own result and undoes nothing else."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from .scimdata import ENTERPRISE, create_group, create_user, patch, user_body
from .sessionkit import is_active, start_session

BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


def bulk(scim, operations: list[dict], fail_on_errors: Any = None, **extra: Any):
    """POST a BulkRequest with these operations (and ``failOnErrors`` when given).

    The body is sent as ASCII JSON, so a lone surrogate travels as the escape ``\\ud800``
    exactly as an IdP's serializer would send it."""
    body: dict = {"schemas": [BULK], "Operations": operations, **extra}
    if fail_on_errors is not None:
        body["failOnErrors"] = fail_on_errors
    return scim.post("/Bulk", content=json.dumps(body),
                     headers={"Content-Type": "application/scim+json"})


def results(response) -> list[dict]:
    assert response.status_code == 200, response.text
    return response.json()["Operations"]


def statuses(response) -> list[str]:
    return [result["status"] for result in results(response)]


def new_id(result: dict) -> str:
    return result["location"].rsplit("/", 1)[1]


def post_user(bulk_id: str, user_name: str, **extra: Any) -> dict:
    return {"method": "POST", "path": "/Users", "bulkId": bulk_id,
            "data": user_body(user_name, **extra)}


def managed_by(bulk_id: str) -> dict:
    return {ENTERPRISE: {"manager": {"value": f"bulkId:{bulk_id}"}}}


def user_count(scim, user_name: str) -> int:
    found = scim.get("/Users", params={"filter": f'userName eq "{user_name}"'})
    assert found.status_code == 200, found.text
    return found.json()["totalResults"]


def test_bulk_creates_a_user_and_a_group_that_references_it(scim):
    response = bulk(
        scim,
        [
            {
                "method": "POST",
                "path": "/Groups",
                "bulkId": "g1",
                "data": {"displayName": "Bulk", "members": [{"value": "bulkId:u1"}]},
            },
            {
                "method": "POST",
                "path": "/Users",
                "bulkId": "u1",
                "data": {"userName": "bulk@example.com"},
            },
        ],
    )
    assert statuses(response) == ["201", "201"]
    group_id, user_id = (new_id(result) for result in results(response))
    members = scim.get(f"/Groups/{group_id}").json()["members"]
    assert [m["value"] for m in members] == [user_id]


def test_bulk_reports_each_failure_and_keeps_the_successes(scim):
    create_user(scim, "taken@example.com")
    response = bulk(
        scim,
        [
            {
                "method": "POST",
                "path": "/Users",
                "bulkId": "a",
                "data": {"userName": "taken@example.com"},
            },
            {
                "method": "POST",
                "path": "/Users",
                "bulkId": "b",
                "data": {"userName": "fresh@example.com"},
            },
            {"method": "DELETE", "path": "/Users/missing"},
        ],
    )
    assert statuses(response) == ["409", "201", "404"]
    assert results(response)[0]["response"]["scimType"] == "uniqueness"
    assert user_count(scim, "fresh@example.com") == 1


# --- One bad operation never undoes or blocks the others -----------------------------------

TOO_LONG = "x" * 600  # every text column is at most VARCHAR(512)


def _surrogate_user_name(target: dict) -> dict:
    return post_user("bad", "\ud800@example.com")


def _surrogate_display_name_patch(target: dict) -> dict:
    return {"method": "PATCH", "path": f"/Users/{target['id']}",
            "data": patch({"op": "replace", "path": "displayName", "value": "a\ud800b"})}


def _surrogate_in_path(target: dict) -> dict:
    return {"method": "PATCH", "path": "/Users/\ud800",
            "data": patch({"op": "replace", "path": "title", "value": "Boss"})}


def _nul_in_value(target: dict) -> dict:
    return post_user("bad", "nul@example.com", displayName="a\x00b")


def _too_long_user_name(target: dict) -> dict:
    return post_user("bad", f"{TOO_LONG}@example.com")


def _too_long_display_name_patch(target: dict) -> dict:
    return {"method": "PATCH", "path": f"/Users/{target['id']}",
            "data": patch({"op": "replace", "path": "displayName", "value": TOO_LONG})}


BAD_OPERATIONS: dict[str, Callable[[dict], dict]] = {
    "lone-surrogate-in-userName": _surrogate_user_name,
    "lone-surrogate-in-patched-displayName": _surrogate_display_name_patch,
    "lone-surrogate-in-path": _surrogate_in_path,
    "nul-in-displayName": _nul_in_value,
    "600-char-userName": _too_long_user_name,
    "600-char-patched-displayName": _too_long_display_name_patch,
}


@pytest.mark.parametrize("build", BAD_OPERATIONS.values(), ids=BAD_OPERATIONS.keys())
def test_a_bad_operation_fails_alone_and_the_deactivation_beside_it_commits(scim, api, build):
    target = create_user(scim, "target@example.com", displayName="Target")
    leaver = create_user(scim, "leaver@example.com")
    sessions = [start_session(api, client=client, user_id=leaver["id"])
                for client in ("web", "mobile")]
    response = bulk(scim, [
        build(target),
        {"method": "PATCH", "path": f"/Users/{leaver['id']}",
         "data": patch({"op": "replace", "path": "active", "value": False})},
        post_user("joiner", "joiner@example.com"),
    ])
    bad, deactivation, creation = results(response)
    assert (bad["status"], bad["response"]["status"]) == ("400", "400"), bad
    assert bad["response"]["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert (deactivation["status"], creation["status"]) == ("200", "201")
    assert scim.get(f"/Users/{leaver['id']}").json()["active"] is False
    assert [is_active(api, s["token"]) for s in sessions] == [False, False]
    assert scim.get(f"/Users/{new_id(creation)}").json()["userName"] == "joiner@example.com"
    # The bad operation itself changed nothing.
    assert scim.get(f"/Users/{target['id']}").json()["displayName"] == "Target"
    assert scim.get("/Users").json()["totalResults"] == 3


def test_an_operation_that_refers_to_a_failed_one_fails_with_the_reason(scim):
    response = bulk(scim, [
        {"method": "POST", "path": "/Groups", "bulkId": "g",
         "data": {"displayName": "G", "members": [{"value": "bulkId:u"}]}},
        post_user("u", "\ud800@example.com"),
        post_user("ok", "ok@example.com"),
    ])
    group, user, other = results(response)
    assert (group["status"], user["status"], other["status"]) == ("400", "400", "201")
    assert group["response"]["detail"] == "bulkId 'u' was not created: its operation failed"
    assert group["bulkId"] == "g"
    assert scim.get("/Groups").json()["totalResults"] == 0


# --- failOnErrors ------------------------------------------------------------------------------


def test_fail_on_errors_stops_processing(scim):
    response = bulk(
        scim,
        [
            {"method": "DELETE", "path": "/Users/missing"},
            {
                "method": "POST",
                "path": "/Users",
                "bulkId": "x",
                "data": {"userName": "late@example.com"},
            },
        ],
        fail_on_errors=1,
    )
    assert statuses(response) == ["404"]
    assert scim.get("/Users").json()["totalResults"] == 0


def test_fail_on_errors_stops_after_that_many_and_keeps_what_ran(scim):
    response = bulk(scim, [
        {"method": "DELETE", "path": "/Users/missing-1"},
        post_user("kept", "kept@example.com"),
        {"method": "DELETE", "path": "/Users/missing-2"},
        post_user("never", "never@example.com"),
    ], fail_on_errors=2)
    assert statuses(response) == ["404", "201", "404"]
    assert user_count(scim, "kept@example.com") == 1
    assert user_count(scim, "never@example.com") == 0


@pytest.mark.parametrize("value", [0, -1, True, False, "1", 1.5, 1.0, [1], {"n": 1}])
def test_fail_on_errors_must_be_a_positive_integer(scim, value):
    response = bulk(scim, [post_user("u", "u@example.com")], failOnErrors=value)
    assert response.status_code == 400, response.text
    error = response.json()
    assert (error["status"], error["scimType"]) == ("400", "invalidValue")
    assert "'failOnErrors' must be a positive integer" in error["detail"]
    assert scim.get("/Users").json()["totalResults"] == 0


# --- The bulkId graph --------------------------------------------------------------------------
# Each problem fails the operations it concerns, and only those (RFC 7644 §3.7.3 reports per
# operation): the independent operation beside them still commits.


def _graph_results(scim, operations: list[dict]) -> list[dict]:
    response = bulk(scim, [*operations, post_user("bystander", "bystander@example.com")])
    *concerned, bystander = results(response)
    assert bystander["status"] == "201"
    assert user_count(scim, "bystander@example.com") == 1
    return concerned


def _error(result: dict) -> tuple[str, str, str]:
    response = result["response"]
    assert response["status"] == result["status"]
    return result["status"], response["scimType"], response["detail"]


def test_an_undefined_bulk_id_is_a_400_naming_it(scim):
    [group] = _graph_results(scim, [
        {"method": "POST", "path": "/Groups", "bulkId": "g",
         "data": {"displayName": "G", "members": [{"value": "bulkId:never"}]}},
    ])
    assert _error(group) == ("400", "invalidValue",
                             "bulkId 'never' is not defined by any operation")
    assert scim.get("/Groups").json()["totalResults"] == 0


def test_a_reference_to_its_own_bulk_id_is_a_400(scim):
    [user] = _graph_results(scim, [post_user("me", "me@example.com", **managed_by("me"))])
    assert _error(user) == ("400", "invalidValue", "operation refers to its own bulkId 'me'")
    assert user_count(scim, "me@example.com") == 0


def test_a_cycle_is_a_400_naming_both_and_what_depends_on_it_fails_too(scim):
    a, b, c = _graph_results(scim, [
        post_user("a", "a@example.com", **managed_by("b")),
        post_user("b", "b@example.com", **managed_by("a")),
        post_user("c", "c@example.com", **managed_by("a")),
    ])
    cycle = ("400", "invalidValue", "bulkIds 'a' and 'b' refer to each other (a cycle)")
    assert (_error(a), _error(b)) == (cycle, cycle)
    assert _error(c) == ("400", "invalidValue", "bulkId 'a' was not created: its operation failed")
    assert scim.get("/Users").json()["totalResults"] == 1  # the bystander


def test_a_longer_cycle_names_its_members(scim):
    operations = [post_user(name, f"{name}@example.com", **managed_by(nxt))
                  for name, nxt in (("a", "b"), ("b", "c"), ("c", "a"))]
    message = "bulkIds 'a', 'b' and 'c' refer to each other (a cycle)"
    assert [_error(r) for r in _graph_results(scim, operations)] == [
        ("400", "invalidValue", message)] * 3


def test_a_duplicate_bulk_id_fails_both_posts_and_the_references_to_it(scim):
    first, second, group = _graph_results(scim, [
        post_user("dup", "one@example.com"),
        post_user("dup", "two@example.com"),
        {"method": "POST", "path": "/Groups", "bulkId": "g",
         "data": {"displayName": "G", "members": [{"value": "bulkId:dup"}]}},
    ])
    duplicate = ("400", "invalidValue", "bulkId 'dup' is used by more than one operation")
    assert (_error(first), _error(second)) == (duplicate, duplicate)
    assert _error(group) == (
        "400", "invalidValue",
        "bulkId 'dup' is used by more than one operation, so the reference is ambiguous",
    )
    assert (user_count(scim, "one@example.com"), user_count(scim, "two@example.com")) == (0, 0)
    assert scim.get("/Groups").json()["totalResults"] == 0


def test_a_long_chain_of_forward_references_resolves_every_one(scim):
    """Group i has user i as member and user i's manager is user i+1, each defined later in
    the request: 200 operations that must run backwards and answer in request order."""
    size = 100
    operations = []
    for i in range(size):
        operations.append({"method": "POST", "path": "/Groups", "bulkId": f"g{i}",
                           "data": {"displayName": f"Team {i}",
                                    "members": [{"value": f"bulkId:u{i}"}]}})
        manager = managed_by(f"u{i + 1}") if i + 1 < size else {}
        operations.append(post_user(f"u{i}", f"u{i}@example.com", **manager))
    answered = results(bulk(scim, operations))
    assert [(r["bulkId"], r["status"]) for r in answered] == [
        (op["bulkId"], "201") for op in operations
    ]
    ids = {r["bulkId"]: new_id(r) for r in answered}
    listed = scim.get("/Users", params={"count": 1000}).json()["Resources"]
    managers = {u["id"]: u.get(ENTERPRISE, {}).get("manager", {}).get("value") for u in listed}
    assert managers == {ids[f"u{i}"]: ids.get(f"u{i + 1}") for i in range(size)}
    groups = scim.get("/Groups", params={"count": 1000}).json()["Resources"]
    members = {g["id"]: [m["value"] for m in g["members"]] for g in groups}
    assert members == {ids[f"g{i}"]: [ids[f"u{i}"]] for i in range(size)}


def test_a_forward_reference_in_the_path_resolves(scim):
    response = bulk(scim, [
        {"method": "PATCH", "path": "/Groups/bulkId:g",
         "data": patch({"op": "add", "path": "members", "value": [{"value": "bulkId:u"}]})},
        post_user("u", "u@example.com"),
        {"method": "POST", "path": "/Groups", "bulkId": "g", "data": {"displayName": "G"}},
    ])
    assert statuses(response) == ["200", "201", "201"]
    _, user, group = results(response)
    assert results(response)[0]["location"] == group["location"]
    assert [m["value"] for m in scim.get(f"/Groups/{new_id(group)}").json()["members"]] == [
        new_id(user)
    ]


# --- Everything else ---------------------------------------------------------------------------


def test_more_operations_than_advertised_is_413(scim):
    operations = [{"method": "DELETE", "path": f"/Users/{i}"} for i in range(1001)]
    response = bulk(scim, operations)
    assert response.status_code == 413
    assert response.json()["status"] == "413"


def test_a_stale_version_fails_only_its_operation(scim):
    user = create_user(scim, "v@example.com")
    group = create_group(scim, "Versioned")
    response = bulk(scim, [
        {"method": "PATCH", "path": f"/Users/{user['id']}", "version": 'W/"999"',
         "data": patch({"op": "replace", "path": "title", "value": "Stale"})},
        {"method": "PATCH", "path": f"/Groups/{group['id']}", "version": group["meta"]["version"],
         "data": patch({"op": "replace", "path": "displayName", "value": "Renamed"})},
    ])
    assert statuses(response) == ["412", "200"]
    assert "title" not in scim.get(f"/Users/{user['id']}").json()
    assert scim.get(f"/Groups/{group['id']}").json()["displayName"] == "Renamed"


def test_bulk_patch_and_put_and_delete(scim):
    user = create_user(scim, "b2@example.com")
    response = bulk(
        scim,
        [
            {
                "method": "PATCH",
                "path": f"/Users/{user['id']}",
                "data": {"Operations": [{"op": "replace", "path": "title", "value": "Lead"}]},
            },
            {
                "method": "PUT",
                "path": f"/Users/{user['id']}",
                "data": {"userName": "b2@example.com", "title": "Boss"},
            },
            {"method": "DELETE", "path": f"/Users/{user['id']}"},
        ],
    )
    assert statuses(response) == ["200", "200", "204"]
    assert scim.get(f"/Users/{user['id']}").status_code == 404


def test_bulk_body_must_have_operations(scim):
    response = scim.post("/Bulk", json={"schemas": [BULK]})
    assert response.status_code == 400
    assert response.json()["scimType"] == "invalidSyntax"
