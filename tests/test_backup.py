"""``scim-bridge db backup`` / ``db restore``: a consistent SQLite copy taken while users are
being written, restored into a fresh database; refusals are one line, exit 2, and change
nothing. These run on SQLite whatever the test database (PostgreSQL has pg_dump)."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from alembic import command

from scim_bridge import create_app, migrate
from scim_bridge.settings import Settings

from .conftest import PUBLIC_URL, http_client, make_token
from .disks import small_disk  # noqa: F401  (fixture)
from .harness import UNTHROTTLED
from .scimdata import user_body
from .test_operator_errors import assert_one_line_exit_2, invoke


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """A migrated SQLite file of this test's own (replaces conftest's, which may be PostgreSQL)."""
    url = f"sqlite:///{tmp_path / 'bridge.db'}"
    migrate.upgrade(url)
    return url


def _user_names(database_url: str) -> set[str]:
    """Every userName in a database, read over HTTP by an app of its own."""
    app = create_app(Settings(database_url=database_url, public_url=PUBLIC_URL, **UNTHROTTLED))
    try:
        with http_client(app, make_token(app, "reader", "scim"), "/scim/v2") as client:
            response = client.get("/Users", params={"count": 1000, "attributes": "userName"})
        assert response.status_code == 200, response.text
        return {user["userName"] for user in response.json()["Resources"]}
    finally:
        app.extensions["scim_bridge"].close()


def _integrity(path: Path) -> str:
    with sqlite3.connect(path) as connection:
        return str(connection.execute("PRAGMA integrity_check").fetchone()[0])


def test_a_backup_while_users_are_written_restores_every_committed_one(
    app, scim_token, database_url, tmp_path
):
    acknowledged: list[str] = []  # userNames whose 201 had arrived
    failures: list[str] = []
    stop = threading.Event()

    def keep_writing() -> None:
        with http_client(app, scim_token, "/scim/v2") as client:
            for number in range(100_000):
                if stop.is_set():
                    return
                name = f"writer{number}@example.com"
                response = client.post("/Users", json=user_body(name))
                if response.status_code != 201:
                    failures.append(response.text)
                    return
                acknowledged.append(name)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        while len(acknowledged) < 30 and writer.is_alive():
            time.sleep(0.01)
        before_backup = set(acknowledged)
        backup = tmp_path / "backups" / "bridge-backup.db"
        backup.parent.mkdir()
        result = invoke(["db", "backup", str(backup)], DATABASE_URL=database_url)
        assert result.exit_code == 0, result.output
        time.sleep(0.1)  # the writer goes on after the backup
    finally:
        stop.set()
        writer.join()
    assert not failures, failures
    assert _integrity(backup) == "ok"

    fresh = tmp_path / "restored" / "bridge.db"
    fresh.parent.mkdir()
    result = invoke(["db", "restore", str(backup)], DATABASE_URL=f"sqlite:///{fresh}")
    assert result.exit_code == 0, result.output
    assert "db upgrade" not in result.stdout  # the backup is at the newest revision
    restored = _user_names(f"sqlite:///{fresh}")
    assert before_backup <= restored <= set(acknowledged)
    assert len(restored) < len(acknowledged)  # writes went on while and after it was taken
    assert _integrity(fresh) == "ok"


def test_a_backup_never_overwrites_a_file_unless_forced(database_url, tmp_path):
    existing = tmp_path / "yesterday.db"
    existing.write_bytes(b"yesterday's backup")
    result = invoke(["db", "backup", str(existing)], DATABASE_URL=database_url)
    assert_one_line_exit_2(result, str(existing), "--force")
    assert existing.read_bytes() == b"yesterday's backup"

    result = invoke(["db", "backup", "--force", str(existing)], DATABASE_URL=database_url)
    assert result.exit_code == 0, result.output
    assert _integrity(existing) == "ok"
    assert list(tmp_path.glob(".yesterday.db.*")) == []  # no partial copy left behind


def test_a_restore_never_replaces_a_database_unless_forced(database_url, tmp_path):
    backup = tmp_path / "backup.db"
    assert invoke(["db", "backup", str(backup)], DATABASE_URL=database_url).exit_code == 0
    target = tmp_path / "bridge.db"  # the database the URL names
    before = target.read_bytes()
    result = invoke(["db", "restore", str(backup)], DATABASE_URL=database_url)
    assert_one_line_exit_2(result, str(target), "--force", "serve")
    assert target.read_bytes() == before
    result = invoke(["db", "restore", "--force", str(backup)], DATABASE_URL=database_url)
    assert result.exit_code == 0, result.output


def test_an_older_backup_restores_and_then_upgrades(database_url, tmp_path):
    older = tmp_path / "older.db"
    shutil.copy(database_url.removeprefix("sqlite:///"), older)
    command.downgrade(migrate.alembic_config(f"sqlite:///{older}"), "-1")
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    result = invoke(["db", "restore", str(older)], DATABASE_URL=fresh)
    assert result.exit_code == 0, result.output
    assert "run 'scim-bridge db upgrade'" in result.stdout
    assert invoke(["db", "upgrade"], DATABASE_URL=fresh).exit_code == 0
    migrate.require_current(fresh)


def _bad_paths(tmp_path: Path) -> dict[str, tuple[list[str], str, tuple[str, ...]]]:
    """case -> (arguments, database file the URL names, words the one line must hold)."""
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not a database\n")
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE t (x)")
    connection.close()
    db = str(tmp_path / "bridge.db")
    missing = str(tmp_path / "nowhere" / "backup.db")
    return {
        "backup into a missing directory": (["backup", missing], db, ("does not exist",)),
        "backup onto a directory": (["backup", str(tmp_path)], db, ("directory",)),
        "backup of no database": (["backup", str(tmp_path / "b.db")],
                                  str(tmp_path / "absent.db"), ("no database",)),
        "restore from a missing file": (["restore", missing], str(tmp_path / "new.db"),
                                        ("no backup file",)),
        "restore from a text file": (["restore", str(text_file)], str(tmp_path / "new.db"),
                                     ("not a SQLite database",)),
        "restore from another SQLite database": (["restore", str(other)],
                                                 str(tmp_path / "new.db"),
                                                 ("not a scim-bridge database",)),
    }



@pytest.mark.parametrize("case", [
    "backup into a missing directory", "backup onto a directory", "backup of no database",
    "restore from a missing file", "restore from a text file",
    "restore from another SQLite database",
])
def test_a_bad_path_is_one_line_exit_2_and_creates_nothing(case, database_url, tmp_path):
    arguments, database, words = _bad_paths(tmp_path)[case]
    before = sorted(p.name for p in tmp_path.iterdir())
    result = invoke(["db", *arguments], DATABASE_URL=f"sqlite:///{database}")
    assert_one_line_exit_2(result, *words)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_a_backup_onto_a_disk_that_takes_no_writes_is_one_line_and_leaves_nothing(
    database_url, small_disk, fault  # noqa: F811
):
    small_disk.fill() if fault == "full" else small_disk.read_only()
    before = sorted(p.name for p in small_disk.path.iterdir())
    result = invoke(["db", "backup", str(small_disk.path / "backup.db")],
                    DATABASE_URL=database_url)
    assert_one_line_exit_2(result, str(small_disk.path), "full" if fault == "full" else
                           "not writable")
    assert sorted(p.name for p in small_disk.path.iterdir()) == before


def test_a_restore_onto_a_full_disk_is_one_line_and_keeps_the_database(
    scim, database_url, small_disk, tmp_path  # noqa: F811
):
    assert scim.post("/Users", json=user_body("backed-up@example.com")).status_code == 201
    backup = tmp_path / "backup.db"
    assert invoke(["db", "backup", str(backup)], DATABASE_URL=database_url).exit_code == 0
    target = f"sqlite:///{small_disk.path / 'bridge.db'}"
    migrate.upgrade(target)
    small_disk.fill()
    result = invoke(["db", "restore", "--force", str(backup)], DATABASE_URL=target)
    assert_one_line_exit_2(result, "bridge.db", "full")
    (small_disk.path / "filler").unlink()
    assert _integrity(small_disk.path / "bridge.db") == "ok"
    assert _user_names(target) == set()  # SQLite rolled the copy back: nothing half restored


@pytest.mark.parametrize(("action", "tool"), [("backup", "pg_dump"), ("restore", "pg_restore")])
def test_postgresql_is_pointed_to_its_own_tools(action, tool, tmp_path):
    result = invoke(["db", action, str(tmp_path / "dump")],
                    DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:5432/bridge")
    assert_one_line_exit_2(result, tool)
    assert not (tmp_path / "dump").exists()
