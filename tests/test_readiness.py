"""``/readyz``: ready only when the database answers at the newest migration (and Redis, when
configured, answers); otherwise 503 naming the failing check, with ``Retry-After``.
``/healthz`` stays the cheap liveness probe."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest
from alembic import command

from scim_bridge import create_app, migrate
from scim_bridge.settings import Settings

from .conftest import PG_URL, http_client
from .disks import small_disk  # noqa: F401  (fixture)
from .live import fresh_database
from .test_errors import closed_port, unreachable_app  # noqa: F401  (shared fixtures)


def _not_ready(response, *failing: str) -> dict:
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "1"
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status"] == "not ready"
    assert body["error"] == "temporarily_unavailable"
    assert sorted(name for name, state in body["checks"].items() if state != "ok") == \
        sorted(failing)
    for name in failing:
        assert name in body["error_description"]
    for internal in ("hunter2", "127.0.0.1", "bridge.db", "psycopg", "sqlite3", "Traceback"):
        assert internal not in response.text
    return body


def test_a_migrated_database_is_ready(anonymous):
    response = anonymous.get("/readyz")
    assert response.status_code == 200, response.text
    checks = {"database": "ok", "migrations": "ok"} | ({} if PG_URL else {"disk": "ok"})
    assert response.json() == {"status": "ready", "checks": checks}


@pytest.mark.parametrize(("fault", "failing"), [
    ("full", ["disk"]),
    ("read-only", ["database", "disk", "migrations"]),  # WAL cannot even open for reading
])
def test_a_sqlite_disk_that_takes_no_writes_is_not_ready(
    settings, small_disk, fault, failing  # noqa: F811
):
    url = f"sqlite:///{small_disk.path / 'bridge.db'}"
    migrate.upgrade(url)
    app = create_app(settings.with_(database_url=url))
    try:
        with http_client(app, None) as client:
            assert client.get("/readyz").status_code == 200
            if fault == "full":
                small_disk.fill()
            else:
                app.extensions["scim_bridge"].engine.dispose()  # let go of the open files
                small_disk.read_only()
            body = _not_ready(client.get("/readyz"), *failing)
    finally:
        app.extensions["scim_bridge"].engine.dispose()
    assert fault in body["checks"]["disk"]


@pytest.fixture
def one_migration_behind(settings: Settings, tmp_path: Path) -> Iterator[str]:
    """A database of its own whose schema is one migration older than this version's."""
    if PG_URL:
        with fresh_database() as url:
            migrate.upgrade(url)
            command.downgrade(migrate.alembic_config(url), "-1")
            yield url
        return
    copy = tmp_path / "behind.db"
    shutil.copy(settings.database_url.removeprefix("sqlite:///"), copy)
    url = f"sqlite:///{copy}"
    command.downgrade(migrate.alembic_config(url), "-1")
    yield url


def test_a_database_one_migration_behind_is_not_ready(settings, one_migration_behind):
    app = create_app(settings.with_(database_url=one_migration_behind))
    try:
        with http_client(app, None) as client:
            body = _not_ready(client.get("/readyz"), "migrations")
            assert client.get("/healthz").status_code == 200  # alive, only not ready
    finally:
        app.extensions["scim_bridge"].engine.dispose()
    assert body["checks"]["database"] == "ok"
    assert "scim-bridge db upgrade" in body["checks"]["migrations"]


def test_an_unreachable_database_is_not_ready(unreachable_app):  # noqa: F811
    app, _token = unreachable_app
    with http_client(app, None) as client:
        body = _not_ready(client.get("/readyz"), "database", "migrations")
    assert body["checks"]["database"] == "the database is not reachable"


@dataclass(frozen=True)
class _WithRedis(Settings):
    """Settings with the Redis URL that shared rate limits add (present or not on this tree)."""

    redis_url: str | None = None


def test_an_unreachable_redis_is_not_ready(settings, closed_port):  # noqa: F811
    with_redis = _WithRedis(**{**asdict(settings), "redis_url": f"redis://127.0.0.1:{closed_port}/0"})
    app = create_app(with_redis)
    try:
        with http_client(app, None) as client:
            body = _not_ready(client.get("/readyz"), "redis")
    finally:
        app.extensions["scim_bridge"].engine.dispose()
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["migrations"] == "ok"
