"""Fixtures: a migrated database per test (SQLite by default, PostgreSQL when
``SCIM_BRIDGE_TEST_DATABASE_URL`` names one), the app, tokens, and HTTP clients that speak to
the app the way an IdP or the application does."""

from __future__ import annotations

import gc
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import httpx
import pytest
from sqlalchemy import create_engine, text

from scim_bridge import create_app, migrate
from scim_bridge.db import Base, begin_write
from scim_bridge.services import tokens
from scim_bridge.settings import Settings

from .clock import Clock
from .harness import UNTHROTTLED
from .receivers import Receiver, receiving

PUBLIC_URL = "http://bridge.test"
PG_URL = os.environ.get("SCIM_BRIDGE_TEST_DATABASE_URL", "")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """After each module's last test (and its fixtures) ends: collect once, then freeze what
    survives. The suite builds thousands of apps, and every full collection walks every object
    still alive; without this the collector's pauses grow with the run (seconds each, minutes
    in all)."""
    yield
    if nextitem is None or nextitem.module is not getattr(item, "module", None):
        gc.collect()
        gc.freeze()


@pytest.fixture(scope="session")
def _migrated(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated database: a SQLite template file, or the PostgreSQL database under test."""
    if PG_URL:
        migrate.upgrade(PG_URL)
        return PG_URL
    template = tmp_path_factory.mktemp("template") / "template.db"
    migrate.upgrade(f"sqlite:///{template}")
    return str(template)


@pytest.fixture
def database_url(_migrated: str, tmp_path: Path) -> str:
    if PG_URL:
        _truncate(PG_URL)
        return PG_URL
    target = tmp_path / "bridge.db"
    shutil.copy(_migrated, target)
    return f"sqlite:///{target}"


def postgres_unreachable(reason: str) -> NoReturn:
    """Skip a test that needs PostgreSQL, or fail it where CI requires PostgreSQL."""
    if os.environ.get("SCIM_BRIDGE_REQUIRE_POSTGRES"):
        pytest.fail(reason)
    pytest.skip(reason)


def _truncate(url: str) -> None:
    """Empty every table and restart every sequence, in one round trip. DELETE, not TRUNCATE:
    these tables hold a handful of rows, and TRUNCATE makes new files for every table and index
    (hundreds of milliseconds per test on a busy disk) and waits for every other connection's
    lock on them."""
    engine = create_engine(url)
    with engine.begin() as conn:
        sequences = conn.execute(text(
            "SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema()"
        )).scalars().all()
        statements = [f'DELETE FROM "{table.name}"'
                      for table in reversed(Base.metadata.sorted_tables)]
        statements += [f"SELECT setval('\"{name}\"', 1, false)" for name in sequences]
        conn.exec_driver_sql("; ".join(statements))
    engine.dispose()


@pytest.fixture(scope="module")
def server() -> Iterator[object]:
    """A real ``scim-bridge serve`` on a fresh database, shared by one test module."""
    from .live import serve

    with serve() as running:
        yield running


@pytest.fixture
def clock() -> Clock:
    """A clock a test moves by hand; modules that want it pass it into their settings."""
    return Clock()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, public_url=PUBLIC_URL, **UNTHROTTLED)


@pytest.fixture
def app(settings: Settings) -> Iterator[object]:
    application = create_app(settings)
    bridge = application.extensions["scim_bridge"]
    with bridge.sessions() as session:
        begin_write(session)
        tokens.ensure_default_tenant(session)
        session.commit()
    yield application
    bridge.close()


def make_token(app: object, name: str, scope: str, tenant: str | None = None) -> str:
    bridge = app.extensions["scim_bridge"]  # type: ignore[attr-defined]
    with bridge.sessions() as session:
        begin_write(session)
        if tenant and tenant != tokens.DEFAULT_TENANT:
            try:
                tokens.get_tenant(session, tenant)
            except Exception:
                tokens.create_tenant(session, tenant)
        token = tokens.create_token(session, name, scope, tenant)
        session.commit()
    return token


def counted(name: str, **labels: str) -> float:
    """A metric's value in this process (no multiprocess directory here); tests compare it
    before and after."""
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def http_client(app: object, token: str | None, base: str = "") -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(
        transport=httpx.WSGITransport(app=app),  # type: ignore[arg-type]
        base_url=f"{PUBLIC_URL}{base}",
        headers=headers,
    )


@pytest.fixture
def scim_token(app: object) -> str:
    return make_token(app, "okta-prod", "scim")


@pytest.fixture
def scim(app: object, scim_token: str) -> Iterator[httpx.Client]:
    """An IdP's SCIM client: ``scim.get("/Users")`` goes to ``/scim/v2/Users``."""
    with http_client(app, scim_token, "/scim/v2") as client:
        yield client


@pytest.fixture
def anonymous(app: object) -> Iterator[httpx.Client]:
    with http_client(app, None) as client:
        yield client


def sessions_client(app: object, name: str = "frontline-app") -> httpx.Client:
    """The application's client: ``api.post("/sessions")`` is ``POST /api/v1/sessions``."""
    return http_client(app, make_token(app, name, "sessions"), "/api/v1")


def admin_client(app: object, name: str = "console", tenant: str | None = None) -> httpx.Client:
    """An admin's client: ``admin.get("/users")`` is ``GET /api/v1/admin/users``."""
    return http_client(app, make_token(app, name, "admin", tenant), "/api/v1/admin")


@pytest.fixture
def api(app: object) -> Iterator[httpx.Client]:
    with sessions_client(app) as client:
        yield client


@pytest.fixture
def admin(app: object) -> Iterator[httpx.Client]:
    with admin_client(app) as client:
        yield client


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A loopback receiver of deliveries for one test."""
    with receiving() as running:
        yield running


@pytest.fixture
def worker(app: object) -> Iterator[object]:
    """The delivery worker of the test app, running in a thread, woken by its commits."""
    running = app.extensions["scim_bridge"].delivery_worker()  # type: ignore[attr-defined]
    running.start()
    yield running
    running.stop(wait=15)
