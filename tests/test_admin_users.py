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
    amy = create_user(scim, "amy@example.com", displayName="Amy Pond", externalId="00uAMY",
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
        ("00uAMY", ["amy@example.com"]),  # the IdP's externalId, exactly
        ("00uam", []),
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


# Enough rows that each index's range condition decides its cost: on a table of three rows
# every index of users costs the same and the planner's pick among them is arbitrary.
_FILLER_USERS = """
    INSERT INTO users (id, tenant_id, user_name, user_name_key, display_name, name_given,
                       name_family, active, created_at, last_modified, version)
    SELECT 'filler-' || n, 1, f.word, f.word, f.word, f.word, f.word, true, now(), now(), 1
    FROM generate_series(1, 5000) AS n, LATERAL (SELECT md5(n::text) AS word) AS f
"""
_FILLER_EMAILS = """
    INSERT INTO user_values (user_id, attribute, position, value, value_key)
    SELECT id, 'emails', 0, user_name || '@example.com', user_name || '@example.com'
    FROM users WHERE id LIKE 'filler-%'
"""


def _plan(app, statement) -> str:
    """The query plan of ``statement``. On PostgreSQL it is planned against 5,000 more users,
    inserted and analysed in a transaction that is rolled back."""
    engine = app.extensions["scim_bridge"].engine
    compiled = statement.compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            for filler in (_FILLER_USERS, _FILLER_EMAILS, "ANALYZE users, user_values"):
                connection.execute(text(filler))
            rows = connection.execute(text(f"EXPLAIN {compiled}"))
            plan = "\n".join(str(row[-1]) for row in rows)
            connection.rollback()
            return plan
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


def _live(admin) -> dict[str, int]:
    return {u["userName"]: u["active_sessions"] for u in admin.get("/users").json()["users"]}


def _access(admin) -> dict[str, tuple[bool, list[str]]]:
    return {u["userName"]: (u["active"], [g["id"] for g in u["groups"]])
            for u in admin.get("/users").json()["users"]}


def test_a_dry_run_of_the_search_counts_exactly_and_ends_nothing(admin, staff):
    before = _live(admin)
    response = admin.post("/force-logout", json={"search": "r", "dry_run": True})
    assert response.status_code == 200, response.text
    preview = response.json()
    assert (preview["users"], preview["sessions"]) == (1, 1) and preview["confirm"]
    everyone = admin.post("/force-logout", json={"group": staff["tardis"]["id"],
                                                 "dry_run": True}).json()
    assert (everyone["users"], everyone["sessions"]) == (2, 4)
    assert _live(admin) == before


def test_a_confirmed_bulk_logout_of_an_unchanged_selection_runs(admin, staff):
    selection = {"group": staff["tardis"]["id"], "active": True}
    access = _access(admin)
    preview = admin.post("/force-logout", json={**selection, "dry_run": True}).json()
    response = admin.post("/force-logout", json={**selection, "confirm": preview["confirm"]})
    assert response.status_code == 200, response.text
    assert response.json() == {"users": 2, "revoked_sessions": 4}
    assert _live(admin) == {"amy@example.com": 0, "rory@example.com": 0, "Clara@Example.com": 0}
    assert _access(admin) == access  # a session reset, never an access change


def test_a_new_session_since_the_preview_is_a_409_and_nothing_ends(admin, api, staff):
    selection = {"search": "amy"}
    preview = admin.post("/force-logout", json={**selection, "dry_run": True}).json()
    start_session(api, client="kiosk", user_id=staff["amy"]["id"])
    before = _live(admin)
    response = admin.post("/force-logout", json={**selection, "confirm": preview["confirm"]})
    assert response.status_code == 409, response.text
    assert "dry run again" in response.json()["error_description"]
    assert _live(admin) == before and before["amy@example.com"] == 4


def test_a_user_joining_the_selection_since_the_preview_is_a_409(admin, scim, staff):
    selection = {"search": "r"}
    preview = admin.post("/force-logout", json={**selection, "dry_run": True}).json()
    create_user(scim, "river@example.com")
    before = _live(admin)
    response = admin.post("/force-logout", json={**selection, "confirm": preview["confirm"]})
    assert response.status_code == 409
    assert _live(admin) == before


def test_a_confirmation_is_bound_to_its_tenant_and_selection(app, admin, staff):
    preview = admin.post("/force-logout", json={"search": "amy", "dry_run": True}).json()
    moved = admin.post("/force-logout", json={"search": "rory", "confirm": preview["confirm"]})
    assert moved.status_code == 409
    with admin_client(app, "other-console", tenant="other") as other:
        assert other.post("/force-logout", json={"search": "amy", "confirm": preview[
            "confirm"]}).status_code == 409
    assert _live(admin)["amy@example.com"] == 3


@pytest.mark.parametrize(
    "body, field",
    [
        ({"search": "amy", "confirm": "nonsense"}, "confirm"),
        ({"search": "amy", "confirm": 12}, "confirm"),
        ({"search": "amy", "dry_run": True, "confirm": "1.x"}, "confirm"),
        ({"search": 5}, "search"),
        ({"group": ["x"]}, "group"),
        ({"active": "maybe"}, "active"),
        ({"user_ids": [], "search": "amy"}, "user_ids"),
    ],
)
def test_bad_bulk_requests_are_a_400_and_end_nothing(admin, staff, body, field):
    before = _live(admin)
    response = admin.post("/force-logout", json=body)
    assert response.status_code == 400, response.text
    assert field in response.json()["error_description"]
    assert _live(admin) == before


def test_an_expired_confirmation_is_a_409(admin, staff):
    response = admin.post("/force-logout", json={"search": "amy", "confirm": "1.AAAA"})
    assert response.status_code == 409 and "expired" in response.text
    assert _live(admin)["amy@example.com"] == 3


def _member_patch(op: str, user_id: str) -> dict:
    if op == "add":
        return patch({"op": "add", "path": "members", "value": [{"value": user_id}]})
    return patch({"op": "remove", "path": f'members[value eq "{user_id}"]'})


def test_a_users_history_tells_what_happened_newest_first(admin, scim, api, staff):
    rory = staff["rory"]["id"]
    tardis = staff["tardis"]["id"]
    console = create_group(scim, "Console")
    assert scim.patch(f"/Groups/{console['id']}", json=_member_patch("add", rory)).is_success
    assert scim.patch(f"/Groups/{tardis}", json=_member_patch("remove", rory)).is_success
    start_session(api, client="web", user_id=rory)
    assert scim.patch(f"/Users/{rory}", json=patch(
        {"op": "replace", "value": {"active": False}})).is_success
    assert scim.patch(f"/Users/{rory}", json=patch(
        {"op": "replace", "value": {"active": True}})).is_success
    start_session(api, client="kiosk", user_id=rory)
    admin.post(f"/users/{rory}/force-logout")
    response = admin.get(f"/users/{rory}/history")
    assert response.status_code == 200, response.text
    history = response.json()["events"]
    assert [(e["type"], e["group_name"], len(e["session_ids"])) for e in history] == [
        ("force_logout", None, 1),
        ("user_reactivated", None, 0),
        ("user_deactivated", None, 1),
        ("member_removed", "Tardis", 1),
        ("member_added", "Console", 0),
        ("member_added", "Tardis", 0),
        ("user_created", None, 0),
    ]
    assert history[0]["actor"] == "admin:console"
    assert {e["actor"] for e in history[1:]} == {"scim:okta-prod"}
    assert [e["id"] for e in history] == sorted((e["id"] for e in history), reverse=True)


def test_history_pages_with_a_cursor_and_stays_in_the_tenant(app, admin, scim, staff):
    amy = staff["amy"]["id"]
    admin.post(f"/users/{amy}/force-logout")
    everything = admin.get(f"/users/{amy}/history").json()["events"]
    seen, cursor = [], None
    while True:
        body = admin.get(f"/users/{amy}/history",
                         params={"count": 1, **({"before": cursor} if cursor else {})}).json()
        seen += body["events"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == everything and len(seen) >= 3
    assert admin.get(f"/users/{amy}/history", params={"before": "x"}).status_code == 400
    assert admin.get(f"/users/{amy}/history", params={"count": "ten"}).status_code == 400
    assert admin.get("/users/nobody/history").status_code == 404
    with admin_client(app, "other-console", tenant="other") as other:
        assert other.get(f"/users/{amy}/history").status_code == 404


def test_a_users_sessions_say_what_ended_each(admin, scim, api, staff):
    rory = staff["rory"]["id"]
    assert scim.patch(f"/Groups/{staff['tardis']['id']}",
                      json=_member_patch("remove", rory)).is_success
    start_session(api, client="web", user_id=rory)
    admin.post(f"/users/{rory}/force-logout")
    live = start_session(api, client="kiosk", user_id=rory)
    sessions = admin.get(f"/users/{rory}/sessions").json()["sessions"]
    assert [(s["client"], s["active"]) for s in sessions] == [
        ("kiosk", True), ("web", False), ("mobile", False)]
    assert sessions[0]["session_id"] == live["session_id"]
    assert sessions[0]["revocation"] is None
    assert (sessions[1]["revocation"]["type"], sessions[1]["revocation"]["actor"]) == (
        "force_logout", "admin:console")
    assert (sessions[2]["revocation"]["type"], sessions[2]["revocation"]["actor"]) == (
        "member_removed", "scim:okta-prod")
    assert all(s["expires_at"] and s["created_at"] for s in sessions)


def test_a_page_costs_the_same_few_queries_whatever_its_size(app, admin, scim, api):
    from sqlalchemy import event

    for number in range(12):
        user = create_user(scim, f"member{number:02d}@example.com")
        start_session(api, client="web", user_id=user["id"])
        create_group(scim, f"Team {number}", [user["id"]])
    engine = app.extensions["scim_bridge"].engine
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        sizes = []
        for size in (2, 12):
            statements.clear()
            body = admin.get("/users", params={"count": size}).json()
            assert len(body["users"]) == size and all(u["groups"] for u in body["users"])
            sizes.append(len([s for s in statements if s.lstrip().upper().startswith("SELECT")]))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    # the total, the users, their groups, their sessions (the token is read on the driver's
    # cursor, where SQLAlchemy's events do not see it: scim_bridge/prepared.py)
    assert sizes == [4, 4], statements
