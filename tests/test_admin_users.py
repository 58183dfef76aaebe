"""User Management's API: prefix search over names and emails, group, status and SCIM filters,
cursor paging, live sessions by client; Bulk User Logout with a dry run and a confirmation;
a user's history."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from scim_bridge.models import User
from scim_bridge.store.user_search import matching_prefix

from .scimdata import create_group, create_user, patch
from .sessionkit import admin_client, start_session


@pytest.fixture
def staff(scim, api):
    amy = create_user(scim, "amy@example.com", displayName="Amy Pond",
                      name={"givenName": "Amelia", "familyName": "Pond"},
                      emails=[{"value": "a.pond@Leadworth.example", "primary": True}])
    rory = create_user(scim, "rory@example.com", displayName="Rory Williams",
                       name={"givenName": "Rory", "familyName": "Williams"})
    clara = create_user(scim, "Clara@Example.com", displayName="Clara Oswald",
                        name={"givenName": "Clara", "familyName": "Oswald"})
    tardis = create_group(scim, "Tardis", [amy["id"], rory["id"]])
    for client in ("web", "mobile", "web"):
        start_session(api, client=client, user_id=amy["id"])
    start_session(api, client="mobile", user_id=rory["id"])
    scim.patch(f"/Users/{clara['id']}", json=patch({"op": "replace", "value": {"active": False}}))
    return {"amy": amy, "rory": rory, "clara": clara, "tardis": tardis}


def _names(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [user["userName"] for user in response.json()["users"]]


@pytest.mark.parametrize(
    "search, expected",
    [
        ("AMY@", ["amy@example.com"]),  # userName
        ("rory will", ["rory@example.com"]),  # displayName
        ("amel", ["amy@example.com"]),  # givenName
        ("OSW", ["Clara@Example.com"]),  # familyName
        ("a.pond@lead", ["amy@example.com"]),  # an email
        ("clara@EXAMPLE", ["Clara@Example.com"]),  # case-insensitive on the stored case
        ("example.com", []),  # a prefix, not a substring
        ("%", []),
        ("_", []),
    ],
)
def test_search_matches_a_prefix_of_each_name_and_email(admin, staff, search, expected):
    assert _names(admin.get("/users", params={"search": search})) == expected


def test_group_active_and_scim_filter_narrow_the_list(admin, staff):
    tardis = staff["tardis"]["id"]
    assert _names(admin.get("/users", params={"group": tardis})) == [
        "amy@example.com", "rory@example.com"]
    assert _names(admin.get("/users", params={"active": "false"})) == ["Clara@Example.com"]
    assert _names(admin.get("/users", params={"active": "true", "search": "r"})) == [
        "rory@example.com"]
    scim_filter = 'name.familyName eq "pond" or displayName sw "Clara"'
    assert _names(admin.get("/users", params={"filter": scim_filter})) == [
        "amy@example.com", "Clara@Example.com"]
    assert _names(admin.get("/users", params={"filter": scim_filter, "group": tardis})) == [
        "amy@example.com"]


def test_each_user_has_groups_and_live_sessions_by_client(admin, staff):
    users = {u["userName"]: u for u in admin.get("/users").json()["users"]}
    amy, rory, clara = users["amy@example.com"], users["rory@example.com"], users[
        "Clara@Example.com"]
    assert amy["groups"] == [{"id": staff["tardis"]["id"], "displayName": "Tardis"}]
    assert amy["sessions_by_client"] == {"web": 2, "mobile": 1}
    assert amy["active_sessions"] == 3 and amy["last_session_at"]
    admin.post(f"/users/{staff['rory']['id']}/force-logout")
    rory = admin.get("/users", params={"search": "rory"}).json()["users"][0]
    assert rory["sessions_by_client"] == {} and rory["active_sessions"] == 0
    assert rory["last_session_at"]  # an ended session still started then
    assert clara["sessions_by_client"] == {} and clara["last_session_at"] is None


def test_cursor_paging_visits_every_user_once_while_users_are_added(admin, scim):
    for number in range(0, 20, 2):
        create_user(scim, f"user{number:02d}@example.com")
    seen: list[str] = []
    cursor = None
    added = 1
    while True:
        params = {"count": 3, **({"after": cursor} if cursor else {})}
        body = admin.get("/users", params=params).json()
        seen += [user["userName"] for user in body["users"]]
        if added < 20:  # inserts on both sides of the cursor between pages
            create_user(scim, f"user{added:02d}@example.com")
            added += 2
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    assert {f"user{n:02d}@example.com" for n in range(0, 20, 2)} <= set(seen)
    assert seen == sorted(seen)


@pytest.mark.parametrize(
    "params",
    [
        {"after": "not-a-cursor"},
        {"after": "WyJhIl0"},  # valid base64 of a JSON list of the wrong shape
        {"after": "WyJhIiwiYiJd", "startIndex": 2},
        {"filter": "nosuch eq 1"},
        {"filter": 'userName eq "unterminated'},
        {"active": "yes"},
    ],
)
def test_bad_list_parameters_are_a_400_naming_the_field(admin, staff, params):
    response = admin.get("/users", params=params)
    assert response.status_code == 400, response.text
    detail = response.text
    assert any(name in detail for name in params) or "filter" in detail.lower()


def test_another_tenants_admin_sees_none_of_these_users(app, staff):
    with admin_client(app, "other-console", tenant="other") as other:
        assert _names(other.get("/users")) == []
        assert _names(other.get("/users", params={"search": "amy"})) == []
        assert other.get(f"/users/{staff['amy']['id']}/sessions").status_code == 404


def _plan(app, statement) -> str:
    """The query plan of ``statement``; PostgreSQL is told to avoid sequential scans so a
    tiny test table shows which index it can use."""
    engine = app.extensions["scim_bridge"].engine
    compiled = statement.compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SET enable_seqscan = off"))
            rows = connection.execute(text(f"EXPLAIN {compiled}"))
        else:
            rows = connection.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))
        return "\n".join(str(row[-1]) for row in rows)


def test_every_field_of_a_prefix_search_is_an_index_range_scan(app, staff):
    plan = _plan(app, select(User.id).where(matching_prefix(1, "amy")))
    for index in ("ix_users_tenant_lower_display_name", "ix_users_tenant_lower_name_given",
                  "ix_users_tenant_lower_name_family"):
        assert index in plan, plan
    if app.extensions["scim_bridge"].engine.dialect.name == "postgresql":
        assert "ix_users_tenant_user_name_key_c" in plan, plan
        assert "ix_user_values_attribute_value_key_c" in plan, plan
    else:
        assert "user_name_key>? AND user_name_key<?" in plan, plan  # the unique index
        assert "ix_user_values_attribute_value_key" in plan, plan
        assert "SCAN users" not in plan and "SCAN user_values" not in plan, plan
