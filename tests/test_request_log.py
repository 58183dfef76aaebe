"""The SCIM request log answers "why did my Okta sync fail?" in plain words."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from scim_bridge import create_app
from scim_bridge.requestlog import RequestLog

from .conftest import http_client, make_token
from .scimdata import create_user, patch
from .sessionkit import admin_client


def _log(admin) -> list[dict]:
    response = admin.get("/requests", params={"count": 500})
    assert response.status_code == 200, response.text
    return response.json()["requests"]


@pytest.mark.parametrize("make_request,status,reason", [
    (lambda s: s.post("/Users", json={"userName": "dup@example.com"}), 409, "uniqueness"),
    (lambda s: s.get("/Users", params={"filter": 'nope eq "x"'}), 400, "invalid filter"),
    (lambda s: s.get("/Users/missing"), 404, "not found"),
    (lambda s: s.post("/Users", content=b"{oops"), 400, "malformed request"),
])
def test_failures_are_logged_with_their_reason(scim, admin, make_request, status, reason):
    create_user(scim, "dup@example.com")
    make_request(scim)
    entry = _log(admin)[0]
    assert entry["status"] == status
    assert entry["reason"].startswith(reason + ": ")
    assert entry["token_name"] == "okta-prod"
    assert entry["duration_ms"] >= 0 and entry["method"] and entry["path"].startswith("/scim/v2/")


def test_unknown_attribute_in_a_patch_path_is_named(scim, admin):
    user = create_user(scim, "p@example.com")
    scim.patch(f"/Users/{user['id']}", json=patch({"op": "replace", "path": "colour", "value": 1}))
    entry = _log(admin)[0]
    assert entry["status"] == 400
    assert "colour" in entry["reason"]


def test_successes_are_logged_without_a_reason(scim, admin):
    create_user(scim, "ok@example.com")
    entry = _log(admin)[0]
    assert (entry["method"], entry["status"], entry["reason"]) == ("POST", 201, None)


def test_request_bodies_and_secrets_are_never_logged(scim, scim_token, admin):
    create_user(scim, "secret@example.com", password="hunter2-very-secret")
    entries = _log(admin)
    assert [(e["method"], e["path"], e["status"]) for e in entries] == [
        ("POST", "/scim/v2/Users", 201)
    ]
    assert "hunter2" not in str(entries)
    assert scim_token not in str(entries)


def _paths(admin) -> list[str]:
    return [entry["path"] for entry in _log(admin)]


def test_retention_is_bounded_per_tenant(settings):
    """Each tenant keeps its newest ``request_log_retention`` entries; one tenant's traffic
    never prunes another's."""
    app = create_app(settings.with_(request_log_retention=10))
    acme = http_client(app, make_token(app, "okta", "scim"), "/scim/v2")
    globex = http_client(app, make_token(app, "entra", "scim", "globex"), "/scim/v2")
    acme_admin = admin_client(app, "acme-console")
    globex_admin = admin_client(app, "globex-console", "globex")
    with acme, globex, acme_admin, globex_admin:
        for index in range(5):
            acme.get("/Users", params={"count": index})
        for index in range(120):
            globex.get("/Users", params={"count": index})
        assert _paths(acme_admin) == [f"/scim/v2/Users?count={i}" for i in reversed(range(5))]
        assert _paths(globex_admin) == [
            f"/scim/v2/Users?count={i}" for i in reversed(range(110, 120))
        ]
        for index in range(5, 25):
            acme.get("/Users", params={"count": index})
        assert _paths(acme_admin) == [
            f"/scim/v2/Users?count={i}" for i in reversed(range(15, 25))
        ]
        assert len(_paths(globex_admin)) == 10
    app.extensions["scim_bridge"].close()


class BusyDatabase:
    """Another connection holding the write lock on the app's database until released:
    ``BEGIN IMMEDIATE`` on SQLite, ``LOCK TABLE request_log`` on PostgreSQL. The app's settings
    give up waiting after 100 ms (the busy timeout, or PostgreSQL's ``lock_timeout``)."""

    def __init__(self, settings):
        url = settings.database_url
        if url.startswith("sqlite"):
            self.settings = settings.with_(sqlite_busy_timeout_ms=100)
            self._holder = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
            self._lock_sql = ["BEGIN IMMEDIATE"]
        else:
            self.settings = settings.with_(database_url=f"{url}?options=-c%20lock_timeout%3D100")
            self._engine = create_engine(url)
            self._holder = self._engine.raw_connection()
            self._lock_sql = ["BEGIN", "LOCK TABLE request_log IN EXCLUSIVE MODE"]

    def hold(self) -> None:
        cursor = self._holder.cursor()
        for statement in self._lock_sql:
            cursor.execute(statement)
        cursor.close()

    def release(self) -> None:
        self._holder.rollback()

    def close(self) -> None:
        self._holder.close()
        if hasattr(self, "_engine"):
            self._engine.dispose()


@pytest.fixture
def busy(settings) -> Iterator[BusyDatabase]:
    database = BusyDatabase(settings)
    yield database
    database.close()


@pytest.fixture
def busy_app(busy) -> Iterator[object]:
    app = create_app(busy.settings)
    yield app
    app.extensions["scim_bridge"].engine.dispose()


def test_a_batch_the_busy_database_refuses_is_written_once_it_is_free(busy, busy_app, caplog):
    request_log = busy_app.extensions["scim_bridge"].request_log
    with http_client(busy_app, make_token(busy_app, "okta", "scim"), "/scim/v2") as scim, \
            admin_client(busy_app) as admin:
        busy.hold()
        for index in range(3):
            assert scim.get("/Users", params={"count": index}).status_code == 200
        with pytest.raises(OperationalError):
            request_log.flush()
        assert "kept for the next attempt" in caplog.text
        busy.release()
        request_log.flush()
        assert _paths(admin) == [f"/scim/v2/Users?count={i}" for i in reversed(range(3))]
    assert "dropped" not in caplog.text


def _stored(app) -> int:
    """Entries in the table, read without flushing (as another process would see them)."""
    with app.extensions["scim_bridge"].engine.connect() as connection:
        return connection.execute(text("SELECT count(*) FROM request_log")).scalar_one()


def test_the_background_writer_retries_until_the_database_is_free(busy, busy_app):
    with http_client(busy_app, make_token(busy_app, "okta", "scim"), "/scim/v2") as scim, \
            admin_client(busy_app) as admin:
        busy.hold()
        for index in range(3):
            scim.get("/Users", params={"count": index})
        time.sleep(1.5)  # the writer's first attempts (every 0.5 s, then backing off) fail
        busy.release()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _stored(busy_app) < 3:
            time.sleep(0.1)
        assert _stored(busy_app) == 3, "the background writer did not retry"
        assert _paths(admin) == [f"/scim/v2/Users?count={i}" for i in reversed(range(3))]


def test_past_the_buffer_cap_the_oldest_entries_are_dropped_and_counted(
    busy, busy_app, caplog
):
    bridge = busy_app.extensions["scim_bridge"]
    bridge.request_log = RequestLog(bridge.sessions, retention=100, max_pending=5)
    with http_client(busy_app, make_token(busy_app, "okta", "scim"), "/scim/v2") as scim, \
            admin_client(busy_app) as admin:
        busy.hold()
        for index in range(8):
            scim.get("/Users", params={"count": index})
        with pytest.raises(OperationalError):
            bridge.request_log.flush()
        assert "dropped the 3 oldest entries" in caplog.text
        busy.release()
        assert _paths(admin) == [f"/scim/v2/Users?count={i}" for i in reversed(range(3, 8))]


def _writers() -> int:
    return sum(thread.name == "scim-bridge-request-log" for thread in threading.enumerate())


def test_closing_the_app_writes_what_is_pending_and_ends_its_writer(settings):
    app = create_app(settings)
    before = _writers()
    scim = http_client(app, make_token(app, "okta-prod", "scim"), "/scim/v2")
    assert scim.get("/Users").status_code == 200
    assert _writers() == before + 1

    app.extensions["scim_bridge"].close()

    assert _writers() == before
    engine = create_engine(settings.database_url)
    with engine.connect() as connection:
        paths = connection.execute(text("SELECT path FROM request_log")).scalars().all()
    engine.dispose()
    assert paths == ["/scim/v2/Users"]
