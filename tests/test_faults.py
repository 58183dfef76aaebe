"""Parts of the system fail under a running service: PostgreSQL goes away and comes back, a
SQLite writer holds the lock past the busy timeout, the SQLite disk fills up or turns read-only,
a gunicorn worker is killed in the middle of a request. Every time the client gets a clean 503
with ``Retry-After`` (never a 500), nothing is half-applied, and the service carries on by itself
once the fault is gone.

PostgreSQL's outage is played by a loopback proxy (tests/tcpproxy.py) between the service and
the shared server, which is never touched.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from scim_bridge import create_app, migrate
from scim_bridge.settings import Settings

from .conftest import PG_URL, http_client, make_token
from .disks import SmallDisk, small_disk  # noqa: F401  (fixture)
from .harness import UNTHROTTLED_ENV, BridgeServer
from .live import ERROR, LiveServer, fresh_database, unique
from .scimdata import create_group, create_user, member_ids, patch, user_body
from .tcpproxy import TcpProxy, proxying

needs_postgres = pytest.mark.skipif(
    not PG_URL, reason="needs PostgreSQL (SCIM_BRIDGE_TEST_DATABASE_URL)")
needs_sqlite = pytest.mark.skipif(bool(PG_URL), reason="a SQLite fault: runs on the SQLite pass")

_TOKEN_LINE = r"^SCIM token:\s+(\S+)\s*$"


# -- what a client sees -------------------------------------------------------------------------


def assert_scim_503(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "1"
    assert response.headers["Content-Type"].startswith("application/scim+json")
    body = response.json()
    assert body["schemas"] == [ERROR] and body["status"] == "503"
    assert "retry" in body["detail"]
    assert "Traceback" not in response.text
    return body


def assert_json_503(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "1"
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) >= {"error", "error_description"}
    assert "Traceback" not in response.text
    return body


def introspect(application: httpx.Client, token: str) -> bool:
    response = application.post("/sessions/introspect", data={"token": token})
    assert response.status_code == 200, response.text
    return response.json()["active"] is True


def start_session(application: httpx.Client, user_id: str) -> str:
    response = application.post("/sessions", json={"user_id": user_id, "client": "web"})
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


def worker_pids(server: BridgeServer) -> set[int]:
    """gunicorn's workers: the children of the master (``scim-bridge serve`` itself)."""
    master = server.process.pid
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return {int(pid) for pid in children}


def wait_for(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {seconds} s")


# -- a real server, optionally behind the proxy -------------------------------------------------


def start_server(database_url: str, direct_url: str, *serve_args: str) -> LiveServer:
    env = {k: v for k, v in os.environ.items() if k != "SCIM_BRIDGE_PUBLIC_URL"}
    env.update(UNTHROTTLED_ENV)
    process = BridgeServer(database_url, env=env, serve_args=serve_args)
    try:
        token = process.wait_for_line(_TOKEN_LINE).group(1)
        process.wait_healthy()
    except BaseException:
        process.stop()
        raise
    # The CLI (tokens for the other scopes) reaches the database directly, never the proxy.
    return LiveServer(process.base_url, token, direct_url, process)


@pytest.fixture(scope="module")
def behind_proxy() -> Iterator[tuple[LiveServer, TcpProxy, str]]:
    """``scim-bridge serve`` (two workers, no delivery thread) whose every PostgreSQL
    connection runs through a proxy the test can cut; and the database's direct URL, for the
    test's own look."""
    with fresh_database() as direct_url:
        url = make_url(direct_url)
        with proxying(url.port or 5432, url.host or "127.0.0.1") as proxy:
            proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(
                hide_password=False)
            # --no-worker: a delivery thread would notice the cut at once and clear the pool
            # before any request does; a deployment with a separate worker has no such luck.
            server = start_server(proxied, direct_url, "--workers", "2", "--threads", "4",
                                  "--no-worker")
            try:
                yield server, proxy, direct_url
            finally:
                assert server.process is not None
                server.process.stop()


class Traffic:
    """Two IdP clients creating and reading users for as long as the test runs; every answer
    is kept. An outage may give 503s, never a 500 or a dropped connection."""

    def __init__(self, server: LiveServer) -> None:
        self._server = server
        self._stop = threading.Event()
        self.answers: list[httpx.Response] = []
        self.broken: list[BaseException] = []
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(2)]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _run(self) -> None:
        with self._server.client({}) as client:
            while not self._stop.is_set():
                try:
                    name = f"{unique('traffic')}@example.com"
                    self.answers.append(client.post("/Users", json=user_body(name)))
                    self.answers.append(client.get("/Users", params={
                        "filter": f'userName eq "{name}"'}))
                except httpx.TransportError as error:
                    self.broken.append(error)
                time.sleep(0.02)

    def statuses(self) -> set[int]:
        return {answer.status_code for answer in self.answers}


def _waiting_on_a_lock(direct_url: str) -> int:
    engine = create_engine(direct_url)
    try:
        with engine.connect() as connection:
            return int(connection.scalar(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'")) or 0)
    finally:
        engine.dispose()


@needs_postgres
def test_postgresql_going_away_mid_traffic_is_a_clean_503_and_recovers_unrestarted(behind_proxy):
    server, proxy, direct_url = behind_proxy
    with server.client({}) as scim, server.application() as application, \
            httpx.Client(base_url=server.base_url, timeout=30) as anonymous:
        admin_token = server.cli("token", "create", "--name", unique("console"),
                                 "--scope", "admin")
        admin = httpx.Client(base_url=f"{server.base_url}/api/v1/admin", timeout=30,
                             headers={"Authorization": f"Bearer {admin_token}"})
        ann = create_user(scim, "ann@example.com")
        bob = create_user(scim, "bob@example.com")
        crew = create_group(scim, "Crew", [ann["id"], bob["id"]])
        ann_sessions = [start_session(application, ann["id"]) for _ in range(2)]
        bob_session = start_session(application, bob["id"])

        with Traffic(server) as traffic:
            wait_for(lambda: len(traffic.answers) >= 10, 30, "traffic before the outage")

            # A removal in flight when the database goes: its membership is already deleted,
            # its revocation waits on a lock the test holds on ann's sessions.
            holder = create_engine(direct_url)
            with holder.connect() as locking:
                locking.execute(text("SELECT id FROM app_sessions WHERE user_id = :user "
                                     "FOR UPDATE"), {"user": ann["id"]})
                answer: dict[str, httpx.Response] = {}
                removal = threading.Thread(target=lambda: answer.setdefault(
                    "patch", scim.patch(f"/Groups/{crew['id']}", json=patch(
                        {"op": "remove", "path": f'members[value eq "{ann["id"]}"]'}))))
                removal.start()
                wait_for(lambda: _waiting_on_a_lock(direct_url) >= 1, 15, "the removal blocking")
                proxy.cut()
                removal.join(timeout=30)
                locking.rollback()
            holder.dispose()
            assert_scim_503(answer["patch"])

            assert_scim_503(scim.get("/Users"))
            assert_scim_503(scim.patch(f"/Groups/{crew['id']}", json=patch(
                {"op": "remove", "path": f'members[value eq "{bob["id"]}"]'})))
            assert_json_503(admin.get("/users"))
            assert_json_503(application.post("/sessions", json={"user_id": bob["id"],
                                                                "client": "web"}))
            assert_json_503(application.post("/sessions/introspect",
                                             data={"token": bob_session}))
            ready = anonymous.get("/readyz")
            assert_json_503(ready)
            assert ready.json()["checks"]["database"] != "ok"
            wait_for(lambda: traffic.statuses() & {503}, 15, "a 503 for the traffic")

            proxy.restore()
            # Every worker's pool held connections the cut killed: none of them may fail a
            # request now.
            after = [scim.get(f"/Users/{ann['id']}").status_code for _ in range(12)]
            assert after == [200] * 12
            wait_for(lambda: anonymous.get("/readyz").status_code == 200, 10, "ready again")
            settled = len(traffic.answers)
            wait_for(lambda: len(traffic.answers) >= settled + 10, 30, "traffic after the outage")

        assert traffic.broken == []
        assert traffic.statuses() <= {200, 201, 503}, traffic.statuses()
        for failed in (a for a in traffic.answers if a.status_code == 503):
            assert_scim_503(failed)
        assert traffic.answers[-1].status_code in (200, 201)

        # Nothing half-applied: both removals failed whole, membership and sessions intact.
        assert member_ids(scim, crew["id"]) == {ann["id"], bob["id"]}
        assert [introspect(application, t) for t in ann_sessions] == [True, True]
        assert introspect(application, bob_session)
        # And the removal goes through now, revocation with it.
        removed = scim.patch(f"/Groups/{crew['id']}", json=patch(
            {"op": "remove", "path": f'members[value eq "{ann["id"]}"]'}))
        assert removed.status_code in (200, 204), removed.text
        assert [introspect(application, t) for t in ann_sessions] == [False, False]
        assert introspect(application, bob_session)
        admin.close()
    assert proxy.refused > 0  # the service did try to reconnect while cut
    assert server.process is not None
    assert not [line for line in server.process.stderr if "Traceback" in line]


def _reads_in_parallel(server: LiveServer, user_id: str, clients: int = 4,
                       each: int = 10) -> list[int]:
    """Statuses of ``clients`` IdP clients reading one user ``each`` times at once: enough
    to reach every worker and several pooled connections in each."""
    statuses: list[int] = []

    def read() -> None:
        with server.client({}) as scim:
            statuses.extend(scim.get(f"/Users/{user_id}").status_code for _ in range(each))

    threads = [threading.Thread(target=read) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return statuses


@needs_postgres
def test_after_a_quiet_postgresql_restart_no_request_fails(behind_proxy):
    """Nobody asked while the database was away: every pooled connection is dead, and still
    the first requests after it are answered (a dead connection is found before use)."""
    server, proxy, _direct_url = behind_proxy
    with server.client({}) as scim:
        user = create_user(scim, f"{unique('quiet')}@example.com")
    assert _reads_in_parallel(server, user["id"]) == [200] * 40
    proxy.cut()
    proxy.restore()
    statuses = _reads_in_parallel(server, user["id"])
    assert statuses == [200] * 40


# -- SQLite: a writer holding the lock past the busy timeout ------------------------------------


@pytest.fixture
def short_busy_app(settings: Settings) -> Iterator[object]:
    app = create_app(settings.with_(sqlite_busy_timeout_ms=200))
    yield app
    app.extensions["scim_bridge"].engine.dispose()



def _request_path_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """What the service logged at WARNING or above, but the request log's writer: it writes
    from its own thread, on its own schedule, and says so in its own line."""
    return [record for record in caplog.records
            if record.levelno >= logging.WARNING and record.name != "scim_bridge.requestlog"]


def _one_line_each(records: list[logging.LogRecord], count: int, *words: str) -> None:
    assert len(records) == count, [record.getMessage() for record in records]
    for record in records:
        message = record.getMessage()
        assert record.exc_info is None and "\n" not in message, message
        for word in words:
            assert word in message, message


@needs_sqlite
def test_a_sqlite_writer_holding_the_lock_past_the_busy_timeout_is_a_503(settings, caplog):
    app = create_app(settings.with_(sqlite_busy_timeout_ms=200))
    path = settings.database_url.removeprefix("sqlite:///")
    try:
        with http_client(app, make_token(app, "okta", "scim"), "/scim/v2") as scim, \
                http_client(app, make_token(app, "app", "sessions"), "/api/v1") as api:
            ann = create_user(scim, "ann@example.com")
            holder = sqlite3.connect(path, isolation_level=None)
            try:
                holder.execute("BEGIN IMMEDIATE")
                caplog.clear()
                with caplog.at_level(logging.WARNING):
                    created = scim.post("/Users", json=user_body("bob@example.com"))
                    started = api.post("/sessions", json={"user_id": ann["id"],
                                                          "client": "web"})
                assert_scim_503(created)
                assert_json_503(started)
                _one_line_each(_request_path_warnings(caplog), 2, "database is locked")
                # WAL: readers do not wait for the writer.
                assert scim.get(f"/Users/{ann['id']}").status_code == 200
            finally:
                holder.rollback()
                holder.close()
            assert scim.get("/Users", params={"filter": 'userName eq "bob@example.com"'}
                            ).json()["totalResults"] == 0
            assert create_user(scim, "bob@example.com")["userName"] == "bob@example.com"
    finally:
        _let_go(app)


@pytest.fixture
def app_on_small_disk(settings: Settings, small_disk: SmallDisk  # noqa: F811
                      ) -> Iterator[tuple[object, SmallDisk]]:
    url = f"sqlite:///{small_disk.path / 'bridge.db'}"
    migrate.upgrade(url)
    app = create_app(settings.with_(database_url=url))
    yield app, small_disk
    _let_go(app)


def _let_go(app: object) -> None:
    """Write the request log while the database is still there, then close the engine."""
    bridge = app.extensions["scim_bridge"]  # type: ignore[attr-defined]
    bridge.close()


@needs_sqlite
def test_a_full_sqlite_disk_is_a_503_with_one_log_line_and_recovers(app_on_small_disk, caplog):
    app, disk = app_on_small_disk
    with http_client(app, make_token(app, "okta", "scim"), "/scim/v2") as scim:
        ann = create_user(scim, "ann@example.com")
        disk.fill()
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            body = assert_scim_503(scim.post("/Users", json=user_body("bob@example.com")))
        assert "full" in body["detail"]
        _one_line_each(_request_path_warnings(caplog), 1, "full", "POST /scim/v2/Users")
        assert scim.get(f"/Users/{ann['id']}").status_code == 200  # reads still work
        (disk.path / "filler").unlink()
        assert scim.get("/Users", params={"filter": 'userName eq "bob@example.com"'}
                        ).json()["totalResults"] == 0
        assert create_user(scim, "bob@example.com")["userName"] == "bob@example.com"


@needs_sqlite
def test_a_read_only_sqlite_disk_is_a_503_with_one_log_line_and_recovers(
    app_on_small_disk, caplog
):
    app, disk = app_on_small_disk
    with http_client(app, make_token(app, "okta", "scim"), "/scim/v2") as scim:
        ann = create_user(scim, "ann@example.com")
        app.extensions["scim_bridge"].engine.dispose()  # a remount needs no file open to write
        disk.read_only()
        try:
            caplog.clear()
            with caplog.at_level(logging.WARNING):
                body = assert_scim_503(scim.post("/Users", json=user_body("bob@example.com")))
            assert "read-only" in body["detail"]
            _one_line_each(_request_path_warnings(caplog), 1, "read-only",
                           "POST /scim/v2/Users")
        finally:
            disk.writable()
        assert scim.get(f"/Users/{ann['id']}").status_code == 200
        assert create_user(scim, "bob@example.com")["userName"] == "bob@example.com"


# -- a gunicorn worker killed in the middle of a request ----------------------------------------


class HeldLock:
    """The database lock a request will wait on, held by the test: on PostgreSQL the rows of one
    user's sessions (the request has already deleted a membership when it waits for them), on
    SQLite the write lock (the request waits to begin)."""

    def __init__(self, database_url: str, user_id: str) -> None:
        self.database_url = database_url
        self.user_id = user_id
        self._engine = create_engine(database_url, connect_args=(
            {} if database_url.startswith("postgresql") else {"isolation_level": None}))
        self._connection = self._engine.connect()

    def __enter__(self) -> HeldLock:
        if self.database_url.startswith("postgresql"):
            self._connection.execute(text(
                "SELECT id FROM app_sessions WHERE user_id = :user FOR UPDATE"),
                {"user": self.user_id})
        else:
            self._connection.exec_driver_sql("BEGIN IMMEDIATE")
        return self

    def wait_until_awaited(self) -> None:
        if self.database_url.startswith("postgresql"):
            wait_for(lambda: _waiting_on_a_lock(self.database_url) >= 1, 15, "a request waiting")
        else:
            time.sleep(0.5)  # SQLite's busy wait cannot be seen from outside

    def __exit__(self, *_exc: object) -> None:
        if self.database_url.startswith("postgresql"):
            self._connection.rollback()
        else:
            self._connection.exec_driver_sql("ROLLBACK")
        self._connection.close()
        self._engine.dispose()


@pytest.fixture
def one_worker() -> Iterator[LiveServer]:
    with fresh_database() as url:
        server = start_server(url, url, "--workers", "1", "--threads", "4")
        try:
            yield server
        finally:
            assert server.process is not None
            server.process.stop()


BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


def test_a_worker_killed_mid_bulk_applies_nothing_and_is_replaced(one_worker):
    server = one_worker
    assert server.process is not None
    with server.client({}) as scim, server.application() as application:
        ann = create_user(scim, "ann@example.com")
        crew = create_group(scim, "Crew", [ann["id"]])
        ann_session = start_session(application, ann["id"])
        (victim,) = worker_pids(server.process)
        bulk = {"schemas": [BULK], "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "carol",
             "data": user_body("carol@example.com")},
            {"method": "PATCH", "path": f"/Groups/{crew['id']}", "data": patch(
                {"op": "remove", "path": f'members[value eq "{ann["id"]}"]'})},
        ]}
        outcome: list[BaseException | httpx.Response] = []

        def send() -> None:
            try:
                outcome.append(scim.post("/Bulk", json=bulk))
            except httpx.TransportError as error:
                outcome.append(error)

        with HeldLock(server.database_url, ann["id"]) as lock:
            sending = threading.Thread(target=send)
            sending.start()
            lock.wait_until_awaited()
            os.kill(victim, 9)
            sending.join(timeout=30)
        assert len(outcome) == 1 and isinstance(outcome[0], httpx.TransportError), outcome

        server.process.wait_for_line(rf"Booting worker with pid: (?!{victim}\b)\d+", 30)
        wait_for(lambda: _answers(server), 30, "the new worker answering")
        assert victim not in worker_pids(server.process)
        assert len(worker_pids(server.process)) == 1

        # Nothing of the Bulk stands: no carol, ann still a member with a live session.
        assert scim.get("/Users", params={"filter": 'userName eq "carol@example.com"'}
                        ).json()["totalResults"] == 0
        assert member_ids(scim, crew["id"]) == {ann["id"]}
        assert introspect(application, ann_session)
        answered = scim.post("/Bulk", json=bulk)
        assert [op["status"] for op in answered.json()["Operations"]] == ["201", "200"]
        assert not introspect(application, ann_session)
    assert server.process.process.poll() is None


def _answers(server: LiveServer) -> bool:
    try:
        return httpx.get(f"{server.base_url}/readyz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False
