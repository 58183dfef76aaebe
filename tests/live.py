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
import subprocess
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import MetaData, create_engine, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SAWarning

from .harness import UNTHROTTLED_ENV, BridgeServer, scim_bridge_command
from .harness import wait_healthy as wait_healthy  # re-exported: tests wait through live

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
    #: The process, for tests that read its output (``stdout``/``stderr`` lines) or signal it.
    process: BridgeServer | None = field(default=None, repr=False, compare=False)

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
            [*scim_bridge_command(), *args],
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
            with warnings.catch_warnings():  # expression indexes do not reflect; rows do
                warnings.filterwarnings("ignore", "Skipped unsupported reflection",
                                        SAWarning)
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
def serve(*serve_args: str) -> Iterator[LiveServer]:
    """Start ``scim-bridge serve`` (with ``serve_args``, e.g. ``--threads 1``) on a fresh
    database; stop it and drop the database after."""
    with fresh_database() as database_url:
        env = {k: v for k, v in os.environ.items() if k != "SCIM_BRIDGE_PUBLIC_URL"}
        env.update(UNTHROTTLED_ENV)  # the shared server answers many tests' requests at once
        server = BridgeServer(database_url, env=env, serve_args=("--workers", "2", *serve_args))
        try:
            token = server.wait_for_line(_TOKEN_LINE.pattern, STARTUP_SECONDS).group(1)
            server.wait_healthy(seconds=STARTUP_SECONDS)
            yield LiveServer(server.base_url, token, database_url, server)
        finally:
            server.stop()


@contextmanager
def fresh_database() -> Iterator[str]:
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
