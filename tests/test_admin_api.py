"""The admin's reading API: users with groups and live session counts, a user's sessions,
the event log with its cursor, and the SCIM request log."""

from __future__ import annotations

import datetime as dt

import pytest

from .conftest import http_client, make_token
from .scimdata import create_group, create_user, patch
from .sessionkit import admin_client, events, start_session


@pytest.fixture
def staff(scim, api):
    amy = create_user(scim, "amy@example.com", displayName="Amy Pond")
    rory = create_user(scim, "rory@example.com", displayName="Rory Williams")
    clara = create_user(scim, "clara@example.com", displayName="Clara Oswald")
    tardis = create_group(scim, "Tardis", [amy["id"], rory["id"]])
    for client in ("web", "mobile"):
        start_session(api, client=client, user_id=amy["id"])
    start_session(api, user_id=rory["id"])
    scim.patch(f"/Users/{clara['id']}", json=patch({"op": "replace", "value": {"active": False}}))
    return {"amy": amy, "rory": rory, "clara": clara, "tardis": tardis}


def _names(body) -> list[str]:
    return [user["userName"] for user in body["users"]]


def test_users_come_with_groups_and_live_session_counts(admin, staff):
    body = admin.get("/users").json()
    assert body["total_results"] == 3
    assert _names(body) == ["amy@example.com", "clara@example.com", "rory@example.com"]
    amy = body["users"][0]
    assert amy["id"] == staff["amy"]["id"]
    assert amy["displayName"] == "Amy Pond" and amy["active"] is True
    assert amy["groups"] == [{"id": staff["tardis"]["id"], "displayName": "Tardis"}]
    assert amy["active_sessions"] == 2
    assert body["users"][2]["active_sessions"] == 1


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"search": "AMY P"}, ["amy@example.com"]),
        ({"search": "rory@"}, ["rory@example.com"]),
        ({"search": "%"}, []),
        ({"group": "tardis"}, ["amy@example.com", "rory@example.com"]),
        ({"active": "false"}, ["clara@example.com"]),
        ({"active": "true", "group": "Tardis", "search": "rory w"}, ["rory@example.com"]),
        ({"startIndex": 2, "count": 1}, ["clara@example.com"]),
    ],
)
def test_users_can_be_searched_filtered_and_paged(admin, staff, params, expected):
    response = admin.get("/users", params=params)
    assert response.status_code == 200
    assert _names(response.json()) == expected


@pytest.mark.parametrize("params", [{"active": "maybe"}, {"count": "ten"}, {"startIndex": "x"},
                                    {"search": "a\x00b"}, {"group": "\x00"}])
def test_bad_user_list_parameters_are_a_400(admin, params):
    assert admin.get("/users", params=params).status_code == 400


def test_a_users_sessions_show_live_and_ended_ones(admin, api, staff):
    amy = staff["amy"]["id"]
    admin.post(f"/users/{amy}/force-logout")
    live = start_session(api, client="kiosk", user_id=amy)
    body = admin.get(f"/users/{amy}/sessions").json()
    assert body["user"]["userName"] == "amy@example.com"
    assert body["active_sessions"] == 1
    assert [(s["client"], s["active"]) for s in body["sessions"]][0] == ("kiosk", True)
    assert body["sessions"][0]["session_id"] == live["session_id"]
    assert sorted(s["active"] for s in body["sessions"]) == [False, False, True]
    assert all(s["revoked_at"] for s in body["sessions"] if not s["active"])


def test_a_deleted_users_session_history_remains(scim, admin, staff):
    rory = staff["rory"]["id"]
    scim.delete(f"/Users/{rory}")
    body = admin.get(f"/users/{rory}/sessions").json()
    assert body["user"] is None
    assert [s["active"] for s in body["sessions"]] == [False]
    assert admin.get("/users/never-existed/sessions").status_code == 404


def test_every_change_is_an_event_in_order(admin, staff):
    assert [(e["type"], e["user_id"]) for e in events(admin)] == [
        ("user_created", staff["amy"]["id"]),
        ("user_created", staff["rory"]["id"]),
        ("user_created", staff["clara"]["id"]),
        ("member_added", staff["amy"]["id"]),
        ("member_added", staff["rory"]["id"]),
        ("user_deactivated", staff["clara"]["id"]),
    ]


def test_events_page_with_a_cursor_and_filter_by_user_and_type(scim, admin, staff):
    setup = events(admin)
    scim.delete(f"/Users/{staff['amy']['id']}")
    scim.delete(f"/Users/{staff['rory']['id']}")
    everything = events(admin)
    assert [e["type"] for e in everything[len(setup):]] == ["user_deleted", "user_deleted"]
    first = admin.get("/events", params={"count": 1}).json()
    assert first["has_more"] is True and len(first["events"]) == 1
    rest = admin.get("/events", params={"after": first["next_cursor"]}).json()
    assert [e["id"] for e in rest["events"]] == [e["id"] for e in everything[1:]]
    assert rest["has_more"] is False
    assert rest["next_cursor"] == str(everything[-1]["id"])
    assert [e["type"] for e in events(admin, user_id=staff["rory"]["id"])] == [
        "user_created", "member_added", "user_deleted"
    ]
    assert len(events(admin, type="user_deleted,user_deactivated")) == 3
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    assert events(admin, since=future) == []
    assert len(events(admin, since="2000-01-01T00:00:00Z")) == len(everything)


@pytest.mark.parametrize("params", [{"after": "abc"}, {"after": "-1"}, {"since": "yesterday"},
                                    {"after": str(2**70)}])
def test_bad_event_parameters_are_a_400(admin, params):
    response = admin.get("/events", params=params)
    assert response.status_code == 400
    assert set(response.json()) == {"error", "error_description"}


def test_events_belong_to_the_admins_tenant(app, admin, staff):
    with admin_client(app, "acme-admin", tenant="acme") as acme_admin:
        assert events(acme_admin) == []
        assert acme_admin.get("/users").json()["total_results"] == 0
    assert len(events(admin, type="user_deactivated")) == 1


def test_the_request_log_explains_failed_scim_requests(app, scim, admin):
    scim.post("/Users", json={"userName": "dup@example.com"})
    scim.post("/Users", json={"userName": "dup@example.com"})
    scim.get("/Users", params={"filter": "userName eq"})
    failed = admin.get("/requests", params={"status": "4xx"}).json()["requests"]
    assert [(r["method"], r["status"]) for r in failed] == [("GET", 400), ("POST", 409)]
    assert "dup@example.com" in failed[1]["reason"]
    assert failed[0]["token_name"] == "okta-prod"
    assert len(admin.get("/requests", params={"method": "post"}).json()["requests"]) == 2
    assert len(admin.get("/requests", params={"status": "201"}).json()["requests"]) == 1
    assert admin.get("/requests", params={"status": "abc"}).status_code == 400
    with http_client(app, make_token(app, "acme-admin", "admin", "acme"),
                     "/api/v1/admin") as acme_admin:
        assert acme_admin.get("/requests").json()["requests"] == []
