"""Force logout, one user or many (Bulk User Logout): sessions end, access does not change,
and only the admin's own tenant is touched."""

from __future__ import annotations

import pytest

from .conftest import http_client, make_token
from .scimdata import create_group, create_user, member_ids
from .sessionkit import admin_client, events, is_active, sessions_client, start_session


@pytest.fixture
def admin(app):
    with admin_client(app, "alex-admin") as client:
        yield client


@pytest.fixture
def ward(scim, api):
    """Three nurses and a doctor; the nurses have two sessions each, the doctor none."""
    nurses = [create_user(scim, f"nurse{i}@example.com", title="Nurse") for i in range(3)]
    doctor = create_user(scim, "doc@example.com", title="Doctor")
    group = create_group(scim, "Ward 7", [u["id"] for u in nurses + [doctor]])
    tokens = {
        user["id"]: [start_session(api, client=c, user_id=user["id"]) for c in ("web", "mobile")]
        for user in nurses
    }
    return {"nurses": nurses, "doctor": doctor, "group": group, "sessions": tokens}


def _states(api, ward) -> dict[str, bool]:
    return {
        user_id: all(is_active(api, s["token"]) for s in sessions)
        for user_id, sessions in ward["sessions"].items()
    }


def _assert_access_unchanged(scim, ward) -> None:
    for user in ward["nurses"] + [ward["doctor"]]:
        assert scim.get(f"/Users/{user['id']}").json()["active"] is True
    assert member_ids(scim, ward["group"]["id"]) == {
        u["id"] for u in ward["nurses"] + [ward["doctor"]]
    }


def test_force_logout_of_one_user_ends_only_their_sessions(scim, api, admin, ward):
    target, *others = ward["nurses"]
    response = admin.post(f"/users/{target['id']}/force-logout")
    assert response.status_code == 200
    assert response.json() == {"user_id": target["id"], "revoked_sessions": 2}
    states = _states(api, ward)
    assert states == {target["id"]: False, **{u["id"]: True for u in others}}
    _assert_access_unchanged(scim, ward)
    assert is_active(api, start_session(api, user_id=target["id"])["token"])


def test_force_logout_is_recorded_with_the_admin_and_the_sessions(admin, ward):
    target = ward["nurses"][0]
    admin.post(f"/users/{target['id']}/force-logout")
    [event] = events(admin, type="force_logout")
    assert event["user_id"] == target["id"]
    assert event["actor"] == "admin:alex-admin"
    assert event["session_ids"] == sorted(s["session_id"] for s in ward["sessions"][target["id"]])


def test_force_logout_of_a_user_without_sessions_ends_none_and_records_nothing(admin, ward):
    response = admin.post(f"/users/{ward['doctor']['id']}/force-logout")
    assert response.json() == {"user_id": ward["doctor"]["id"], "revoked_sessions": 0}
    assert events(admin, type="force_logout") == []


def test_force_logout_twice_ends_nothing_the_second_time(admin, ward):
    target = ward["nurses"][0]["id"]
    assert admin.post(f"/users/{target}/force-logout").json()["revoked_sessions"] == 2
    assert admin.post(f"/users/{target}/force-logout").json()["revoked_sessions"] == 0


def test_force_logout_of_an_unknown_user_is_a_404(admin):
    response = admin.post("/users/no-such-user/force-logout")
    assert response.status_code == 404
    assert set(response.json()) == {"error", "error_description"}


def test_bulk_logout_by_ids_counts_users_and_sessions(scim, api, admin, ward):
    chosen = [ward["nurses"][0]["id"], ward["nurses"][1]["id"], ward["doctor"]["id"]]
    response = admin.post("/force-logout", json={"user_ids": chosen})
    assert response.status_code == 200
    assert response.json() == {"users": 3, "revoked_sessions": 4}
    assert _states(api, ward) == {
        ward["nurses"][0]["id"]: False, ward["nurses"][1]["id"]: False,
        ward["nurses"][2]["id"]: True,
    }
    _assert_access_unchanged(scim, ward)
    logged = {e["user_id"] for e in events(admin, type="force_logout")}
    assert logged == set(chosen[:2])


def test_bulk_logout_by_filter(scim, api, admin, ward):
    nurses = 'title eq "Nurse" and userName sw "nurse"'
    response = admin.post("/force-logout", json={"filter": nurses})
    assert response.status_code == 200
    assert response.json() == {"users": 3, "revoked_sessions": 6}
    assert set(_states(api, ward).values()) == {False}
    _assert_access_unchanged(scim, ward)


def test_bulk_logout_dry_run_counts_without_ending_anything(api, admin, ward):
    response = admin.post("/force-logout", json={"filter": 'title eq "Nurse"', "dry_run": True})
    preview = response.json()
    assert preview.pop("confirm")  # the Bulk User Logout confirmation (tests/test_admin_users)
    assert preview == {"users": 3, "sessions": 6, "revoked_sessions": 0, "active_sessions": 6}
    assert set(_states(api, ward).values()) == {True}


def test_bulk_logout_with_an_unknown_id_changes_nothing(api, admin, ward):
    response = admin.post("/force-logout",
                          json={"user_ids": [ward["nurses"][0]["id"], "no-such-user"]})
    assert response.status_code == 404
    assert "no-such-user" in response.json()["error_description"]
    assert set(_states(api, ward).values()) == {True}


@pytest.mark.parametrize(
    "body, error",
    [
        ({}, "invalid_value"),
        ({"user_ids": [], "filter": 'title eq "x"'}, "invalid_value"),
        ({"user_ids": "abc"}, "invalid_value"),
        ({"user_ids": [1, 2]}, "invalid_value"),
        ({"filter": ""}, "invalid_value"),
        ({"filter": "title eq"}, "invalid_filter"),
        ({"filter": 'secret eq "x"'}, "invalid_filter"),
        ({"filter": 'userName eq "a\x00b"'}, "invalid_syntax"),
        ({"user_ids": ["a\x00b"]}, "invalid_syntax"),
        ({"filter": 'title eq "Nurse"', "dry_run": "yes"}, "invalid_value"),
        ([], "invalid_value"),
    ],
)
def test_bulk_logout_rejects_malformed_requests(api, admin, ward, body, error):
    response = admin.post("/force-logout", json=body)
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert set(_states(api, ward).values()) == {True}


def test_bulk_logout_rejects_bad_json(admin):
    response = admin.post("/force-logout", content=b"{",
                          headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_syntax"


def test_force_logout_stays_in_the_admins_tenant(app, api, admin, ward):
    with http_client(app, make_token(app, "acme-okta", "scim", tenant="acme"), "/scim/v2") as acme:
        outsider = create_user(acme, "nurse0@example.com", title="Nurse")
    outsider_session = start_session(api, tenant="acme", userName="nurse0@example.com")
    with admin_client(app, "acme-admin", tenant="acme") as acme_admin:
        assert acme_admin.post(f"/users/{ward['nurses'][0]['id']}/force-logout").status_code == 404
        assert acme_admin.post("/force-logout",
                               json={"user_ids": [ward["nurses"][0]["id"]]}).status_code == 404
        assert acme_admin.get(f"/users/{ward['nurses'][0]['id']}/sessions").status_code == 404
        assert acme_admin.post("/force-logout", json={"filter": 'title eq "Nurse"'}).json() == {
            "users": 1, "revoked_sessions": 1}
        assert [e["user_id"] for e in events(acme_admin, type="force_logout")] == [outsider["id"]]
    assert set(_states(api, ward).values()) == {True}
    assert not is_active(api, outsider_session["token"])
    admin.post("/force-logout", json={"filter": 'title eq "Nurse"'})
    assert {e["user_id"] for e in events(admin, type="force_logout")} == {
        u["id"] for u in ward["nurses"]
    }


def test_the_admin_api_needs_an_admin_token(app, anonymous, ward):
    assert anonymous.post("/api/v1/admin/force-logout", json={"user_ids": []}).status_code == 401
    with sessions_client(app, "not-an-admin") as wrong:
        response = wrong.post("/admin/force-logout", json={"filter": 'title eq "Nurse"'})
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
