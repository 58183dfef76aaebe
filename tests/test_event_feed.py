"""The event feed ``GET /api/v1/events``: every event of the token's tenant in commit order,
with the request that caused it, resumable from a cursor that never skips a late commit."""

from __future__ import annotations

import base64
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from scim_bridge.db import begin_write
from scim_bridge.events.record import USER_UPDATED, Cause, record
from scim_bridge.services import tokens

from .conftest import PG_URL, http_client, make_token, postgres_unreachable
from .scimdata import create_group, create_user, patch
from .sessionkit import admin_client, sessions_client, start_session

BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


@pytest.fixture
def feed(app: object) -> Iterator[httpx.Client]:
    """A consumer of the feed: ``feed.get("/events")`` is ``GET /api/v1/events``."""
    with http_client(app, make_token(app, "siem", "ssf"), "/api/v1") as client:
        yield client


def page(feed: httpx.Client, **params: Any) -> dict[str, Any]:
    response = feed.get("/events", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"events", "next_cursor"} and body["next_cursor"]
    return body


def everything(feed: httpx.Client, count: int, after: str | None = None) -> list[dict[str, Any]]:
    """The feed from the start (or ``after``) once it holds ``count`` events. On PostgreSQL a
    transaction open elsewhere on the shared server holds the feed back for a moment."""
    params = {"after": after} if after else {}
    deadline = time.monotonic() + 30
    while True:
        events = page(feed, limit=1000, **params)["events"]
        if len(events) >= count or time.monotonic() > deadline:
            return events
        time.sleep(0.05)


def request_id(response: httpx.Response) -> str:
    assert response.status_code < 300, response.text
    return response.headers["X-Request-Id"]


def test_events_of_every_kind_appear_in_order_with_the_request_that_caused_them(app, scim, feed):
    created = scim.post("/Users", json={"userName": "ada@example.com", "schemas": [
        "urn:ietf:params:scim:schemas:core:2.0:User"]})
    ada = created.json()["id"]
    group = scim.post("/Groups", json={"displayName": "Sales", "members": [{"value": ada}],
                                       "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"]})
    with sessions_client(app) as api, admin_client(app) as admin:
        sid = start_session(api, user_id=ada)["session_id"]
        removed = scim.patch(f"/Groups/{group.json()['id']}",
                             json=patch({"op": "remove", "path": f'members[value eq "{ada}"]'}))
        start_session(api, user_id=ada)
        forced = admin.post(f"/users/{ada}/force-logout")
        last = start_session(api, user_id=ada)["session_id"]
        logout = api.delete(f"/sessions/{last}")
    deactivated = scim.patch(f"/Users/{ada}",
                             json=patch({"op": "replace", "value": {"active": False}}))
    deleted = scim.delete(f"/Users/{ada}")

    seen = [(e["type"], e["txn"]) for e in everything(feed, 7)]
    assert seen == [
        ("user_created", request_id(created)),
        ("member_added", request_id(group)),
        ("member_removed", request_id(removed)),
        ("force_logout", request_id(forced)),
        ("logout", request_id(logout)),
        ("user_deactivated", request_id(deactivated)),
        ("user_deleted", request_id(deleted)),
    ]
    removal = everything(feed, 7)[2]
    assert removal["user_id"] == ada and removal["session_ids"] == [sid]
    assert removal["group"] == {"id": group.json()["id"], "name": "Sales"}
    assert removal["actor"] == "scim:okta-prod" and removal["occurred_at"].endswith("Z")
    assert set(removal) == {"id", "type", "occurred_at", "user_id", "group", "actor", "detail",
                            "session_ids", "txn"}


def test_every_event_of_one_patch_shares_its_txn_and_another_request_has_another(scim, feed):
    members = [create_user(scim, f"u{n}@example.com")["id"] for n in range(3)]
    group = create_group(scim, "Night shift", members)
    emptied = scim.patch(f"/Groups/{group['id']}", json=patch({"op": "remove", "path": "members"}))
    removals = [e for e in everything(feed, 9) if e["type"] == "member_removed"]
    assert sorted(e["user_id"] for e in removals) == sorted(members)
    assert {e["txn"] for e in removals} == {request_id(emptied)}
    additions = [e for e in everything(feed, 9) if e["type"] == "member_added"]
    assert len(additions) == 3 and len({e["txn"] for e in additions}) == 1
    assert additions[0]["txn"] != removals[0]["txn"]


def test_every_event_of_one_bulk_request_shares_its_txn(scim, feed):
    operations = [{"method": "POST", "path": "/Users", "bulkId": f"b{n}", "data": {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": f"b{n}@x.org"}}
        for n in range(3)]
    bulk = scim.post("/Bulk", json={"schemas": [BULK], "Operations": operations})
    created = [e for e in everything(feed, 3) if e["type"] == "user_created"]
    assert len(created) == 3 and {e["txn"] for e in created} == {request_id(bulk)}


def test_the_callers_request_id_is_the_txn(scim, feed):
    response = scim.post("/Users", json={"userName": "kim@example.com", "schemas": [
        "urn:ietf:params:scim:schemas:core:2.0:User"]}, headers={"X-Request-Id": "idp-run-42"})
    assert request_id(response) == "idp-run-42"
    assert [e["txn"] for e in everything(feed, 1)] == ["idp-run-42"]


def test_paging_with_limit_visits_every_event_exactly_once(scim, feed):
    made = [create_user(scim, f"p{n}@example.com")["id"] for n in range(7)]
    assert len(everything(feed, 7)) == 7
    seen: list[str] = []
    cursor = None
    sizes = []
    for _ in range(5):
        body = page(feed, limit=3, **({"after": cursor} if cursor else {}))
        sizes.append(len(body["events"]))
        seen += [e["user_id"] for e in body["events"]]
        cursor = body["next_cursor"]
    assert sizes == [3, 3, 1, 0, 0] and seen == made
    create_user(scim, "late@example.com")
    late = [e["detail"] for e in everything(feed, 1, after=cursor)]
    assert late == ["user 'late@example.com' created"]


def test_the_same_cursor_comes_back_when_nothing_is_new(scim, feed):
    empty = page(feed)
    assert empty["events"] == [] and page(feed, after=empty["next_cursor"]) == empty
    create_user(scim, "first@example.com")
    assert len(everything(feed, 1, after=empty["next_cursor"])) == 1
    first = page(feed, after=empty["next_cursor"])
    assert len(first["events"]) == 1
    assert page(feed, after=first["next_cursor"]) == {"events": [],
                                                      "next_cursor": first["next_cursor"]}


def test_limit_is_clamped_to_1_through_1000_and_must_be_an_integer(scim, feed):
    for n in range(2):
        create_user(scim, f"l{n}@example.com")
    assert len(everything(feed, 2)) == 2
    assert len(page(feed, limit=0)["events"]) == 1
    assert len(page(feed, limit=5000)["events"]) == 2
    refused = feed.get("/events", params={"limit": "ten"})
    assert refused.status_code == 400 and "'limit'" in refused.json()["error_description"]


def test_another_tenants_events_never_appear(app, scim, feed):
    create_user(scim, "home@example.com")
    with http_client(app, make_token(app, "acme-okta", "scim", "acme"), "/scim/v2") as acme:
        create_user(acme, "away@example.com")
    with http_client(app, make_token(app, "acme-siem", "ssf", "acme"), "/api/v1") as acme_feed:
        away = [e["detail"] for e in everything(acme_feed, 1)]
        assert away == ["user 'away@example.com' created"]
        cursor = page(acme_feed)["next_cursor"]
    assert [e["detail"] for e in everything(feed, 1)] == ["user 'home@example.com' created"]
    assert everything(feed, 0, after=cursor) == []  # a cursor does not carry a tenant


@pytest.mark.parametrize(("scope", "status"), [("ssf", 200), ("admin", 200), ("scim", 403),
                                               ("sessions", 403)])
def test_ssf_and_admin_tokens_read_the_feed_and_others_are_forbidden(app, scope, status):
    with http_client(app, make_token(app, "caller", scope), "/api/v1") as client:
        response = client.get("/events")
    assert response.status_code == status, response.text
    if status == 403:
        assert "needs 'ssf' or 'admin'" in response.json()["error_description"]


def test_no_token_is_401(anonymous):
    response = anonymous.get("/api/v1/events")
    assert response.status_code == 401 and response.json()["error"]


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    "x", "!!!!", "12", _b64("1"), _b64("1.2.3"), _b64("-1.2"), _b64("01.2"), _b64("1.2 "),
    _b64("99999999999999999999.1"), _b64("9223372036854775807.1"), _b64("1.99999999999"),
    _b64("1.2") + "==", "é", "a" * 200,
])
def test_a_bad_cursor_is_400_naming_it_and_changes_nothing(scim, feed, cursor):
    create_user(scim, "c@example.com")
    response = feed.get("/events", params={"after": cursor})
    assert response.status_code == 400, response.text
    assert "'after'" in response.json()["error_description"]
    assert len(everything(feed, 1)) == 1


# --- PostgreSQL: commit order, not id order -----------------------------------------------------


@pytest.fixture
def postgres(app: object) -> object:
    if not PG_URL:
        postgres_unreachable("needs PostgreSQL (SCIM_BRIDGE_TEST_DATABASE_URL): SQLite writers "
                             "are serialised, so id order is commit order there")
    return app


def _tenant_id(app: Any) -> int:
    with app.extensions["scim_bridge"].sessions() as session:
        return tokens.get_tenant(session, None).id


def _insert(session: Any, tenant_id: int, detail: str) -> None:
    """One event through the event seam, in ``session``'s transaction (not committed)."""
    record(session, tenant_id=tenant_id, cause=Cause(USER_UPDATED, "test", detail=detail),
           user_sessions=[(None, [])])


def _until(feed: httpx.Client, cursor: str, count: int) -> list[dict[str, Any]]:
    """Read on from ``cursor`` until ``count`` events came: a transaction open elsewhere on the
    shared server holds the horizon back for a moment, never for good."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while len(seen) < count and time.monotonic() < deadline:
        body = page(feed, after=cursor)
        seen += body["events"]
        cursor = body["next_cursor"]
        if len(seen) < count:
            time.sleep(0.05)
    return seen


@pytest.mark.parametrize("late_has", ["the lower id", "the higher id"])
def test_an_event_committed_late_is_not_skipped_by_one_committed_before_it(
    postgres, scim, feed, late_has
):
    app: Any = postgres
    start = page(feed)["next_cursor"]
    late = app.extensions["scim_bridge"].sessions()
    try:
        begin_write(late)
        if late_has == "the lower id":
            _insert(late, _tenant_id(app), "late")  # takes its id now, commits last
        else:
            late.connection().exec_driver_sql("SELECT pg_current_xact_id()")  # older, no id yet
        early = create_user(scim, "early@example.com")  # commits while `late` is open
        if late_has == "the higher id":
            _insert(late, _tenant_id(app), "late")
        meanwhile = page(feed, after=start)
        assert meanwhile["events"] == [], "served an event past an open, older transaction"
        late.commit()
    finally:
        late.close()
    seen = _until(feed, meanwhile["next_cursor"], 2)
    assert [e["detail"] for e in seen] == ["late", "user 'early@example.com' created"]
    assert seen[1]["user_id"] == early["id"]


def test_a_reader_paging_during_concurrent_late_commits_sees_each_event_exactly_once(
    postgres, feed
):
    app: Any = postgres
    tenant_id = _tenant_id(app)
    writers, per_writer = 4, 15
    committed: list[str] = []
    lock = threading.Lock()
    done = threading.Event()
    failures: list[BaseException] = []

    def write(number: int) -> None:
        chance = random.Random(number)
        try:
            for n in range(per_writer):
                detail = f"w{number}-{n}"
                with app.extensions["scim_bridge"].sessions() as session:
                    begin_write(session)
                    _insert(session, tenant_id, detail)
                    time.sleep(chance.uniform(0, 0.03))  # commit late, after younger ones
                    if chance.random() < 0.2:
                        session.rollback()  # never committed: must never appear
                        continue
                    session.commit()
                with lock:
                    committed.append(detail)
        except BaseException as error:  # reported by the test, not lost in the thread
            failures.append(error)

    seen: list[str] = []

    def read() -> None:
        try:
            with http_client(app, feed.headers["authorization"].removeprefix("Bearer "),
                             "/api/v1") as reader:
                cursor = page(reader)["next_cursor"]
                while not done.is_set():
                    body = page(reader, after=cursor, limit=4)
                    seen.extend(e["detail"] for e in body["events"])
                    cursor = body["next_cursor"]
                settled = _until(reader, cursor, len(committed) - len(seen))
                seen.extend(e["detail"] for e in settled)
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    reader = threading.Thread(target=read)
    reader.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    reader.join()
    assert not failures, failures
    assert len(committed) > writers * per_writer // 2
    assert sorted(seen) == sorted(committed), "the reader missed or repeated an event"
