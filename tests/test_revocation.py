"""The rule that defines the product: every SCIM change that removes a user's access revokes
every session of that user before the SCIM response returns, and only that user's."""

from __future__ import annotations

from typing import Any

import pytest

from scim_bridge import create_app

from .conftest import http_client, make_token
from .scimdata import create_group, create_user, member_ids, patch, user_body
from .sessionkit import (
    admin_client,
    events,
    introspect,
    is_active,
    revocations,
    sessions_client,
    start_session,
)

BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


class Floor:
    """Alice and Bob are nurses, Carol is in pharmacy; each has a web and a mobile session."""

    def __init__(self, scim: Any, api: Any) -> None:
        self.alice = create_user(scim, "alice@example.com")
        self.bob = create_user(scim, "bob@example.com")
        self.carol = create_user(scim, "carol@example.com")
        self.nurses = create_group(scim, "Nurses", [self.alice["id"], self.bob["id"]])
        self.pharmacy = create_group(scim, "Pharmacy", [self.carol["id"]])
        self.sessions = {
            name: [start_session(api, client=client, user_id=user["id"])
                   for client in ("web", "mobile")]
            for name, user in (("alice", self.alice), ("bob", self.bob), ("carol", self.carol))
        }
        self.api = api

    def active(self, name: str) -> bool:
        states = {is_active(self.api, s["token"]) for s in self.sessions[name]}
        assert len(states) == 1, f"{name}'s sessions disagree"
        return states.pop()

    def session_ids(self, name: str) -> list[str]:
        return sorted(s["session_id"] for s in self.sessions[name])

    def assert_only_revoked(self, *names: str) -> None:
        for name in ("alice", "bob", "carol"):
            assert self.active(name) is (name not in names), name


@pytest.fixture
def floor(scim, api):
    return Floor(scim, api)


def _remove_alice_by_filter(floor):
    return patch({"op": "remove", "path": f'members[value eq "{floor.alice["id"]}"]'})


GROUP_REMOVALS = {
    "remove-by-filter": _remove_alice_by_filter,
    "remove-by-value-array-entra": lambda floor: patch(
        {"op": "Remove", "path": "members",
         "value": [{"$ref": None, "value": floor.alice["id"]}]}
    ),
    "replace-members": lambda floor: patch(
        {"op": "replace", "path": "members", "value": [{"value": floor.bob["id"]}]}
    ),
    "pathless-replace-with-members": lambda floor: patch(
        {"op": "replace", "value": {"members": [{"value": floor.bob["id"]}]}}
    ),
}


@pytest.mark.parametrize("build", GROUP_REMOVALS.values(), ids=GROUP_REMOVALS.keys())
def test_removing_a_member_by_patch_revokes_only_that_member(scim, admin, floor, build):
    response = scim.patch(f"/Groups/{floor.nurses['id']}", json=build(floor))
    assert response.status_code in (200, 204), response.text
    assert member_ids(scim, floor.nurses["id"]) == {floor.bob["id"]}
    floor.assert_only_revoked("alice")
    [event] = revocations(admin, floor.alice["id"])
    assert event["type"] == "member_removed"
    assert event["actor"] == "scim:okta-prod"
    assert (event["group_id"], event["group_name"]) == (floor.nurses["id"], "Nurses")
    assert "Nurses" in event["detail"]
    assert event["session_ids"] == floor.session_ids("alice")


def test_removing_every_member_revokes_them_all(scim, admin, floor):
    response = scim.patch(f"/Groups/{floor.nurses['id']}",
                          json=patch({"op": "remove", "path": "members"}))
    assert response.status_code in (200, 204), response.text
    floor.assert_only_revoked("alice", "bob")
    assert revocations(admin, floor.bob["id"])[0]["session_ids"] == floor.session_ids("bob")


def test_put_of_a_group_without_the_member_revokes_them(scim, admin, floor):
    body = {"schemas": [GROUP], "displayName": "Nurses", "members": [{"value": floor.bob["id"]}]}
    response = scim.put(f"/Groups/{floor.nurses['id']}", json=body)
    assert response.status_code == 200, response.text
    floor.assert_only_revoked("alice")
    assert revocations(admin, floor.alice["id"])[0]["type"] == "member_removed"


def test_deleting_a_group_revokes_every_member(scim, admin, floor):
    assert scim.delete(f"/Groups/{floor.nurses['id']}").status_code == 204
    floor.assert_only_revoked("alice", "bob")
    for name, user in (("alice", floor.alice), ("bob", floor.bob)):
        [event] = revocations(admin, user["id"])
        assert event["type"] == "group_deleted"
        assert (event["group_id"], event["group_name"]) == (floor.nurses["id"], "Nurses")
        assert event["session_ids"] == floor.session_ids(name)


DEACTIVATIONS = {
    "replace-false": {"op": "replace", "path": "active", "value": False},
    "replace-string-False": {"op": "replace", "path": "active", "value": "False"},
    "replace-string-false": {"op": "Replace", "path": "active", "value": "false"},
    "pathless-okta": {"op": "replace", "value": {"active": False}},
    "entra-add": {"op": "Add", "path": "active", "value": "False"},
}


@pytest.mark.parametrize("operation", DEACTIVATIONS.values(), ids=DEACTIVATIONS.keys())
def test_deactivating_a_user_by_patch_revokes_their_sessions(scim, admin, floor, operation):
    response = scim.patch(f"/Users/{floor.alice['id']}", json=patch(operation))
    assert response.status_code == 200, response.text
    assert response.json()["active"] is False
    floor.assert_only_revoked("alice")
    [event] = revocations(admin, floor.alice["id"])
    assert (event["type"], event["actor"]) == ("user_deactivated", "scim:okta-prod")
    assert event["session_ids"] == floor.session_ids("alice")


def test_put_with_active_false_revokes(scim, admin, floor):
    body = user_body("alice@example.com", active=False)
    response = scim.put(f"/Users/{floor.alice['id']}", json=body)
    assert response.status_code == 200, response.text
    floor.assert_only_revoked("alice")
    assert revocations(admin, floor.alice["id"])[0]["type"] == "user_deactivated"


def test_deleting_a_user_revokes_their_sessions(scim, admin, floor):
    assert scim.delete(f"/Users/{floor.alice['id']}").status_code == 204
    floor.assert_only_revoked("alice")
    [event] = revocations(admin, floor.alice["id"])
    assert event["type"] == "user_deleted"
    assert event["session_ids"] == floor.session_ids("alice")


def _add(user_id: str) -> dict[str, Any]:
    return patch({"op": "add", "path": "members", "value": [{"value": user_id}]})


def _bulk(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [BULK], "Operations": list(operations)}


BULK_CHANGES = {
    "patch-group-remove": lambda f: {"method": "PATCH", "path": f"/Groups/{f.nurses['id']}",
                                     "data": _remove_alice_by_filter(f)},
    "put-group-without": lambda f: {"method": "PUT", "path": f"/Groups/{f.nurses['id']}",
                                    "data": {"schemas": [GROUP], "displayName": "Nurses",
                                             "members": [{"value": f.bob["id"]}]}},
    "patch-user-inactive": lambda f: {"method": "PATCH", "path": f"/Users/{f.alice['id']}",
                                      "data": patch(DEACTIVATIONS["entra-add"])},
    "put-user-inactive": lambda f: {"method": "PUT", "path": f"/Users/{f.alice['id']}",
                                    "data": user_body("alice@example.com", active=False)},
    "delete-user": lambda f: {"method": "DELETE", "path": f"/Users/{f.alice['id']}"},
}


@pytest.mark.parametrize("build", BULK_CHANGES.values(), ids=BULK_CHANGES.keys())
def test_bulk_operations_revoke_like_single_requests(scim, admin, floor, build):
    response = scim.post("/Bulk", json=_bulk(build(floor)))
    assert response.status_code == 200, response.text
    [result] = response.json()["Operations"]
    assert int(result["status"]) < 300, result
    floor.assert_only_revoked("alice")
    assert revocations(admin, floor.alice["id"])[0]["session_ids"] == floor.session_ids("alice")


def test_bulk_delete_of_a_group_revokes_its_members(scim, floor):
    operation = {"method": "DELETE", "path": f"/Groups/{floor.nurses['id']}"}
    assert scim.post("/Bulk", json=_bulk(operation)).status_code == 200
    floor.assert_only_revoked("alice", "bob")


def test_a_failed_change_revokes_nothing(scim, admin, floor):
    """The revocation is in the change's transaction: no change, no revocation."""
    body = patch(
        {"op": "remove", "path": f'members[value eq "{floor.alice["id"]}"]'},
        {"op": "add", "path": "members", "value": [{"value": "no-such-user"}]},
    )
    response = scim.patch(f"/Groups/{floor.nurses['id']}", json=body)
    assert response.status_code == 400
    bulk = scim.post("/Bulk", json=_bulk({"method": "PATCH",
                                          "path": f"/Groups/{floor.nurses['id']}",
                                          "data": body}))
    assert int(bulk.json()["Operations"][0]["status"]) == 400
    floor.assert_only_revoked()
    assert revocations(admin, floor.alice["id"]) == []


def test_removal_from_one_group_revokes_even_with_other_groups_left(scim, floor):
    scim.patch(f"/Groups/{floor.pharmacy['id']}", json=_add(floor.alice["id"]))
    scim.patch(f"/Groups/{floor.pharmacy['id']}",
               json=patch({"op": "remove", "path": f'members[value eq "{floor.alice["id"]}"]'}))
    floor.assert_only_revoked("alice")
    assert floor.alice["id"] in member_ids(scim, floor.nurses["id"])


def test_reactivation_never_revives_a_revoked_session(scim, api, floor):
    path = f"/Users/{floor.alice['id']}"
    scim.patch(path, json=patch(DEACTIVATIONS["replace-false"]))
    response = scim.patch(path, json=patch({"op": "replace", "path": "active", "value": True}))
    assert response.json()["active"] is True
    assert not floor.active("alice")
    assert is_active(api, start_session(api, user_id=floor.alice["id"])["token"])


def test_adding_a_member_revokes_nothing_and_shows_the_group_at_once(scim, api, admin, floor):
    scim.patch(f"/Groups/{floor.pharmacy['id']}", json=_add(floor.alice["id"]))
    floor.assert_only_revoked()
    for session in floor.sessions["alice"]:
        assert introspect(api, session["token"])["groups"] == ["Nurses", "Pharmacy"]
    assert revocations(admin, floor.alice["id"]) == []


def test_with_revoke_on_group_add_adding_a_member_revokes(settings):
    app = create_app(settings.with_(revoke_on_group_add=True))
    try:
        with http_client(app, make_token(app, "okta", "scim"), "/scim/v2") as scim, \
                sessions_client(app) as api, admin_client(app) as admin:
            dana = create_user(scim, "dana@example.com")
            erin = create_user(scim, "erin@example.com")
            group = create_group(scim, "ICU", [erin["id"]])
            dana_session = start_session(api, user_id=dana["id"])
            erin_session = start_session(api, user_id=erin["id"])
            scim.patch(f"/Groups/{group['id']}", json=_add(dana["id"]))
            assert not is_active(api, dana_session["token"])
            assert is_active(api, erin_session["token"])
            [event] = revocations(admin, dana["id"])
            assert (event["type"], event["group_name"]) == ("member_added", "ICU")
            assert is_active(api, start_session(api, user_id=dana["id"])["token"])
    finally:
        app.extensions["scim_bridge"].engine.dispose()


def test_every_revocation_event_names_cause_actor_group_and_sessions(scim, admin, floor):
    scim.patch(f"/Groups/{floor.nurses['id']}", json=_remove_alice_by_filter(floor))
    scim.patch(f"/Users/{floor.carol['id']}", json=patch(DEACTIVATIONS["pathless-okta"]))
    scim.delete(f"/Users/{floor.bob['id']}")
    ended = [e for e in events(admin) if e["session_ids"]]
    assert [(e["type"], e["user_id"]) for e in ended] == [
        ("member_removed", floor.alice["id"]),
        ("user_deactivated", floor.carol["id"]),
        ("user_deleted", floor.bob["id"]),
    ]
    for event in ended:
        assert event["actor"] == "scim:okta-prod"
        assert event["detail"] and event["occurred_at"].endswith("Z")
        assert len(event["session_ids"]) == 2
    assert ended[0]["group_name"] == "Nurses"
