"""Two ``scim-bridge serve`` processes on one PostgreSQL database: a removal that arrives at
one is seen by introspection at the other at once, and both agree on the signing keys."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from jose import jwt
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from scim_bridge.db import begin_write, make_engine, make_sessionmaker
from scim_bridge.services import tokens

from .conftest import postgres_unreachable
from .harness import free_port
from .live import wait_healthy
from .scimdata import patch, user_body

SERVER = os.environ.get("SCIM_BRIDGE_TEST_DATABASE_URL") or (
    "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
PUBLIC_URL = "http://bridge.multi"


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A throwaway database on the PostgreSQL server, dropped afterwards."""
    if not SERVER.startswith("postgresql"):
        pytest.skip(f"SCIM_BRIDGE_TEST_DATABASE_URL is not PostgreSQL: {SERVER}")
    admin = create_engine(SERVER, isolation_level="AUTOCOMMIT")
    try:
        admin.connect().close()
    except OperationalError as exc:
        admin.dispose()
        postgres_unreachable(f"PostgreSQL is not reachable at {SERVER}: {exc.orig}")
    name = f"scim_bridge_mp_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(SERVER).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class Server:
    """One ``scim-bridge serve`` process."""

    def __init__(self, database_url: str, log: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {**os.environ, "SCIM_BRIDGE_DATABASE_URL": database_url,
               "SCIM_BRIDGE_PUBLIC_URL": PUBLIC_URL}
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from scim_bridge.cli import main; main()", "serve",
             "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
             "--threads", "4"],
            stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env,
        )

    def wait_until_healthy(self) -> None:
        wait_healthy(self.base, self.process, self.log.read_text)

    def client(self, token: str, base: str) -> httpx.Client:
        return httpx.Client(base_url=f"{self.base}{base}", timeout=10,
                            headers={"Authorization": f"Bearer {token}"})

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def servers(pg_database: str, tmp_path: Path) -> Iterator[tuple[Server, Server, dict]]:
    first = Server(pg_database, tmp_path / "first.log")
    started = [first]
    try:
        first.wait_until_healthy()  # the first start migrates; the second finds it done
        second = Server(pg_database, tmp_path / "second.log")
        started.append(second)
        second.wait_until_healthy()
        engine = make_engine(pg_database)
        with make_sessionmaker(engine)() as session:
            begin_write(session)
            issued = {scope: tokens.create_token(session, f"{scope}-mp", scope)
                      for scope in ("scim", "sessions", "admin")}
            session.commit()
        engine.dispose()
        yield first, second, issued
    finally:
        for server in started:
            server.stop()


def _introspect(api: httpx.Client, token: str) -> bool:
    response = api.post("/api/v1/sessions/introspect", data={"token": token})
    assert response.status_code == 200, response.text
    return response.json()["active"]


def test_a_removal_at_one_process_is_seen_at_the_other_at_once(servers):
    first, second, issued = servers
    # Both processes meet an empty key table at the same moment.
    threads = [threading.Thread(target=httpx.get, args=(f"{s.base}/.well-known/jwks.json",))
               for s in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with first.client(issued["scim"], "/scim/v2") as scim_a, \
            second.client(issued["scim"], "/scim/v2") as scim_b, \
            first.client(issued["sessions"], "") as api_a, \
            second.client(issued["sessions"], "") as api_b:
        ivan = scim_a.post("/Users", json=user_body("ivan@example.com")).json()
        jane = scim_a.post("/Users", json=user_body("jane@example.com")).json()
        group = scim_a.post("/Groups", json={"displayName": "Crew", "members": [
            {"value": ivan["id"]}, {"value": jane["id"]}]}).json()
        tokens_of = {
            user["id"]: [
                api.post("/api/v1/sessions", json={"client": "web", "user_id": user["id"]})
                .json()["token"]
                for api in (api_a, api_b)
            ]
            for user in (ivan, jane)
        }
        for token in tokens_of[ivan["id"]] + tokens_of[jane["id"]]:
            assert _introspect(api_a, token) and _introspect(api_b, token)

        removed = scim_a.patch(f"/Groups/{group['id']}", json=patch(
            {"op": "remove", "path": f'members[value eq "{ivan["id"]}"]'}))
        assert removed.status_code in (200, 204), removed.text
        assert [_introspect(api_b, t) for t in tokens_of[ivan["id"]]] == [False, False]
        assert [_introspect(api_b, t) for t in tokens_of[jane["id"]]] == [True, True]

        deactivated = scim_b.patch(f"/Users/{jane['id']}", json=patch(
            {"op": "replace", "path": "active", "value": False}))
        assert deactivated.status_code == 200, deactivated.text
        assert [_introspect(api_a, t) for t in tokens_of[jane["id"]]] == [False, False]

    jwks = [httpx.get(f"{s.base}/.well-known/jwks.json").json() for s in (first, second)]
    assert jwks[0] == jwks[1]
    used = {jwt.get_unverified_header(t)["kid"] for ts in tokens_of.values() for t in ts}
    assert used <= {key["kid"] for key in jwks[0]["keys"]}
