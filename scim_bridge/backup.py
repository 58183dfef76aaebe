"""``scim-bridge db backup`` / ``db restore`` for SQLite, with SQLite's online backup API: the
copy is one consistent snapshot even while ``serve`` keeps writing (WAL readers never block
writers). PostgreSQL has its own tools (``pg_dump`` / ``pg_restore``); we say so.

Every refusal is a :class:`BackupError` whose message is one line saying what to do; a refused
command changes nothing (a backup is written beside its target and renamed into place).
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

from .migrate import head_revisions, known_revisions

__all__ = ["BackupError", "backup", "restore"]

#: Seconds to wait for another connection's lock on either database.
_BUSY_TIMEOUT_S = 30.0


class BackupError(Exception):
    """A backup or restore the operator has to change; the message says how."""


def backup(database_url: str, target: Path, *, force: bool = False) -> Path:
    """Copy the SQLite database of ``database_url`` to ``target``; returns the source path."""
    source = _sqlite_file(database_url, "pg_dump -Fc -f FILE DBNAME")
    if not source.is_file():
        raise BackupError(f"there is no database at {source} to back up")
    _check_new_file(target, force=force)
    with _opened(source) as original:
        partial: Path | None = None
        try:
            fd, name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
            os.close(fd)
            partial = Path(name)
            with _connect(partial, shown=target) as copy:
                original.backup(copy)
                _check_integrity(copy, target)
            os.replace(partial, target)
        except OSError as exc:
            raise BackupError(f"writing {target} failed ({exc.strerror or exc})") from None
        finally:
            if partial is not None:
                _remove_with_journals(partial)
    return source


def restore(database_url: str, source: Path, *, force: bool = False) -> str:
    """Copy the backup ``source`` into the SQLite database of ``database_url`` (replacing it
    only with ``force``); returns the backup's migration revision."""
    target = _sqlite_file(database_url, "pg_restore -d DBNAME FILE")
    if not source.is_file():
        raise BackupError(f"there is no backup file at {source}")
    if target.exists() and target.stat().st_size and not force:
        raise BackupError(f"{target} already holds a database; stop 'scim-bridge serve' and "
                          "pass --force to replace it with the backup")
    _check_directory(target.parent)
    with _opened(source) as backed_up:
        revision = _revision(backed_up, source)
        _check_integrity(backed_up, source)
        # Into the database itself (not a file swap): SQLite keeps its WAL files consistent.
        with _connect(target) as current:
            backed_up.backup(current)
    return revision


def is_current(revision: str) -> bool:
    return {revision} == head_revisions()


def _sqlite_file(database_url: str, postgres_tool: str) -> Path:
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        raise BackupError(f"this database is PostgreSQL: use its own tools ({postgres_tool}); "
                          "scim-bridge backs up and restores SQLite files only")
    return Path(url.database or "").resolve()


def _check_new_file(target: Path, *, force: bool) -> None:
    if target.is_dir():
        raise BackupError(f"{target} is a directory; name the backup file to write")
    if target.exists() and not force:
        raise BackupError(f"{target} already exists; pass --force to replace it")
    _check_directory(target.parent)


def _check_directory(directory: Path) -> None:
    if not directory.is_dir():
        raise BackupError(f"the directory {directory} does not exist; create it first")
    if not os.access(directory, os.W_OK):  # a read-only mount too, even for root
        raise BackupError(f"the directory {directory} is not writable")


def _remove_with_journals(path: Path) -> None:
    """A partial copy and whatever journal SQLite left beside it."""
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@contextmanager
def _opened(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection to an existing SQLite file; never creates or changes it."""
    try:
        connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True,
                                     timeout=_BUSY_TIMEOUT_S)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot open {path} ({exc})") from None
    try:
        try:
            connection.execute("PRAGMA schema_version").fetchone()
        except sqlite3.DatabaseError as exc:
            raise BackupError(f"{path} is not a SQLite database ({exc})") from None
        yield connection
    finally:
        connection.close()


@contextmanager
def _connect(path: Path, *, shown: Path | None = None) -> Iterator[sqlite3.Connection]:
    """A writable connection to ``path``, created if missing; errors name ``shown``."""
    shown = shown or path
    try:
        connection = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_S)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot write {shown} ({exc})") from None
    try:
        yield connection
    except sqlite3.Error as exc:  # e.g. "database or disk is full"; SQLite rolled it back
        raise BackupError(f"writing {shown} failed ({exc})") from None
    finally:
        connection.close()


def _revision(connection: sqlite3.Connection, path: Path) -> str:
    """The backup's migration revision, which this version must know (it upgrades from it)."""
    try:
        rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.DatabaseError:
        rows = []
    if len(rows) != 1:
        raise BackupError(f"{path} is not a scim-bridge database (no migration revision)")
    revision = str(rows[0][0])
    if revision not in known_revisions():
        raise BackupError(f"{path} is at revision {revision}, which this scim-bridge does not "
                          "know; restore it with the newer scim-bridge that wrote it")
    return revision


def _check_integrity(connection: sqlite3.Connection, path: Path) -> None:
    result = connection.execute("PRAGMA integrity_check").fetchone()
    if result is None or result[0] != "ok":
        raise BackupError(f"{path} fails SQLite's integrity check; use another backup")
