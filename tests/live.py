"""A real ``scim-bridge serve`` process for black-box flow tests, and HTTP clients that speak
to it the way Okta and Microsoft Entra ID do.

The server runs on a free loopback port with a fresh database: a SQLite file in a temporary
directory, or, when ``SCIM_BRIDGE_TEST_DATABASE_URL`` names a PostgreSQL server, a throwaway
database created on that server and dropped afterwards. The SCIM token is the one the server
prints on its first start.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import MetaData, create_engine, select
from sqlalchemy.engine import make_url

PG_URL = os.environ.get("SCIM_BRIDGE_TEST_DATABASE_URL", "")
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
STARTUP_SECONDS = 60
_TOKEN_LINE = re.compile(r"^SCIM token:\s+(\S+)\s*$")


class IdpClient(httpx.Client):
    """An IdP's SCIM client: ``json=`` bodies go out with the IdP's own Content-Type (or none)."""

    def __init__(self, *, body_content_type: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.body_content_type = body_content_type

    def request(self, method: str, url: Any, *, json: Any = None, **kwargs: Any) -> Any:
        if json is not None:
            kwargs["content"] = _dumps(json)
            headers = dict(kwargs.pop("headers", None) or {})
            if self.body_content_type and not _has_header(headers, "content-type"):
                headers["Content-Type"] = self.body_content_type
            kwargs["headers"] = headers
        return super().request(method, url, **kwargs)


def _dumps(body: Any) -> bytes:
    return json.dumps(body).encode("utf-8")


def _has_header(headers: dict[str, Any], name: str) -> bool:
    return any(key.lower() == name for key in headers)


@dataclass
class LiveServer:
    base_url: str
    scim_token: str
    database_url: str

    @property
    def scim_url(self) -> str:
        return f"{self.base_url}/scim/v2"

    def client(
        self,
        headers: dict[str, str],
        *,
        body_content_type: str | None = "application/scim+json; charset=utf-8",
        token: str | None = None,
        drop_default_accept: bool = False,
    ) -> IdpClient:
        """A client for ``/scim/v2`` sending exactly ``headers`` plus the bearer token."""
        client = IdpClient(
            body_content_type=body_content_type,
            base_url=self.scim_url,
            headers={"Authorization": f"Bearer {token or self.scim_token}", **headers},
            timeout=30,
        )
        if drop_default_accept and "Accept" not in headers:
            del client.headers["Accept"]  # Entra's GETs carry no Accept of their own
        return client

    def cli(self, *args: str) -> str:
        """Run ``scim-bridge ARGS`` against this server's database; returns stdout."""
        result = subprocess.run(
            [_scim_bridge(), *args],
            env={**os.environ, "SCIM_BRIDGE_DATABASE_URL": self.database_url},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return result.stdout.strip()

    def application(self) -> httpx.Client:
        """The application's client for ``/api/v1``, with a new ``sessions`` token."""
        token = self.cli("token", "create", "--name", unique("app"), "--scope", "sessions")
        return httpx.Client(
            base_url=f"{self.base_url}/api/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )

    def stored_text(self) -> str:
        """Every value of every row of every table, as one string: to prove something is not
        stored anywhere."""
        engine = create_engine(self.database_url)
        try:
            metadata = MetaData()
            metadata.reflect(engine)
            with engine.connect() as connection:
                return "\n".join(
                    repr(tuple(row))
                    for table in metadata.sorted_tables
                    for row in connection.execute(select(table))
                )
        finally:
            engine.dispose()


@contextmanager
def serve() -> Iterator[LiveServer]:
    """Start ``scim-bridge serve`` on a fresh database; stop it and drop the database after."""
    with _fresh_database() as database_url:
        port = _free_port()
        env = {**os.environ, "SCIM_BRIDGE_DATABASE_URL": database_url}
        env.pop("SCIM_BRIDGE_PUBLIC_URL", None)
        process = subprocess.Popen(
            [_scim_bridge(), "serve", "--host", "127.0.0.1", "--port", str(port),
             "--workers", "2"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        output = _Output(process)
        try:
            token = output.scim_token()
            base_url = f"http://127.0.0.1:{port}"
            wait_healthy(base_url, process, output.tail)
            yield LiveServer(base_url, token, database_url)
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


class _Output:
    """Drains the server's stdout and stderr in the background (so it never blocks on a full
    pipe) and keeps them for error messages."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.token_seen = threading.Event()
        for stream, lines in ((process.stdout, self.stdout), (process.stderr, self.stderr)):
            threading.Thread(target=self._drain, args=(stream, lines), daemon=True).start()

    def _drain(self, stream: Any, lines: list[str]) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))
            if _TOKEN_LINE.match(lines[-1]):
                self.token_seen.set()
        self.token_seen.set()  # the stream ended: stop waiting either way

    def scim_token(self) -> str:
        self.token_seen.wait(STARTUP_SECONDS)
        for line in self.stdout:
            match = _TOKEN_LINE.match(line)
            if match:
                return match.group(1)
        raise RuntimeError(f"scim-bridge serve printed no SCIM token\n{self.tail()}")

    def tail(self) -> str:
        return "\n".join(["-- stdout", *self.stdout[-20:], "-- stderr", *self.stderr[-40:]])


def wait_healthy(base_url: str, process: subprocess.Popen[Any], describe: Any) -> None:
    """Wait until ``GET /healthz`` answers 200; ``describe()`` explains a failure."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"scim-bridge serve exited with {process.returncode}\n{describe()}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"scim-bridge serve never answered /healthz\n{describe()}")


@contextmanager
def _fresh_database() -> Iterator[str]:
    if PG_URL:
        with _throwaway_postgres(PG_URL) as url:
            yield url
        return
    directory = tempfile.mkdtemp(prefix="scim-bridge-live-")
    try:
        yield f"sqlite:///{directory}/bridge.db"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def _throwaway_postgres(server_url: str) -> Iterator[str]:
    import psycopg

    url = make_url(server_url)
    name = f"scim_bridge_live_{uuid.uuid4().hex[:12]}"
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _scim_bridge() -> str:
    """The console script next to this interpreter, else the one on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "scim-bridge")
    return beside if os.path.exists(beside) else shutil.which("scim-bridge") or "scim-bridge"


def unique(prefix: str) -> str:
    """A name no other test in the module uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def start_session(application: httpx.Client, user_id: str) -> str:
    """Sign a user in to the application; returns the session token."""
    response = application.post("/sessions", json={"user_id": user_id, "client": "web"})
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


def session_is_active(application: httpx.Client, token: str) -> bool:
    response = application.post("/sessions/introspect", data={"token": token})
    assert response.status_code == 200, response.text
    return response.json()["active"] is True


# -- what every IdP checks in an answer ---------------------------------------------------------


def assert_list_response(body: dict[str, Any]) -> None:
    """A ListResponse with JSON integers for its counts (idp-quirks A1), never strings."""
    assert LIST_RESPONSE in body["schemas"]
    for key in ("totalResults", "startIndex", "itemsPerPage"):
        assert type(body[key]) is int, f"{key} must be a JSON integer: {body[key]!r}"
    assert isinstance(body["Resources"], list)


def assert_error(response: httpx.Response, status: int) -> None:
    """A SCIM Error (idp-quirks A4, A8): the Error schema, a detail, ``status`` as a string,
    served as application/scim+json."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/scim+json")
    body = response.json()
    assert ERROR in body["schemas"]
    assert body["detail"]
    assert body["status"] == str(status)
