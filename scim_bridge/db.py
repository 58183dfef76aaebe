"""Engine, database-session factory and the declarative base.

SQLite gets WAL, a busy timeout, case-sensitive LIKE (the filter compiler folds case itself)
and ``BEGIN IMMEDIATE`` for writing transactions, so concurrent writers queue on the lock
instead of failing to upgrade a read lock.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import URL, DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

#: Execution option a request sets on its connection when it will write.
WRITE_OPTION = "scim_bridge_write"

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Stores naive UTC, hands back aware UTC, on every backend."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class DatabaseUnusable(Exception):
    """The database URL cannot be used as it is: no such driver, or a SQLite file that cannot
    be created. The message says what to change."""


#: Seconds a PostgreSQL connection attempt may take before it fails (unless the URL says).
CONNECT_TIMEOUT = 10


def make_engine(url: str, *, busy_timeout_ms: int = 30_000) -> Engine:
    """An engine for ``url``; :class:`DatabaseUnusable` when it could never connect."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseUnusable("it is not a database URL") from None
    try:
        if parsed.get_backend_name() == "sqlite":
            _check_sqlite_file(parsed)
            engine = create_engine(
                parsed, connect_args={"check_same_thread": False, "isolation_level": None}
            )
            _configure_sqlite(engine, busy_timeout_ms)
            return engine
        connect_args = {} if "connect_timeout" in parsed.query else {
            "connect_timeout": CONNECT_TIMEOUT}
        # No pre-ping (a round trip on every request): after a database restart the first
        # request fails with 503 and SQLAlchemy invalidates the whole pool.
        return create_engine(parsed, pool_size=10, max_overflow=20, connect_args=connect_args)
    except NoSuchModuleError:
        raise DatabaseUnusable(
            f"SQLAlchemy has no database driver '{parsed.drivername}'; "
            "use sqlite:///path/to/bridge.db or postgresql+psycopg://user@host/dbname"
        ) from None
    except ImportError as exc:
        hint = ("install scim-bridge[postgres] (psycopg) and use postgresql+psycopg://"
                if parsed.get_backend_name() == "postgresql" else "install it")
        raise DatabaseUnusable(
            f"the driver module '{exc.name}' for '{parsed.drivername}' is not installed; {hint}"
        ) from None


def _check_sqlite_file(url: URL) -> None:
    """The database file's directory exists and takes new files (WAL keeps two beside it)."""
    if not url.database or url.database == ":memory:" or url.query.get("uri"):
        return
    path = os.path.abspath(url.database)
    directory = os.path.dirname(path)
    if os.path.isdir(path):
        raise DatabaseUnusable(f"{path} is a directory, not a database file; name a file")
    if not os.path.isdir(directory):
        raise DatabaseUnusable(f"the directory {directory} does not exist; create it first")
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise DatabaseUnusable(
            f"the directory {directory} is not writable ({exc.strerror}); "
            "SQLite needs to create files there: fix its permissions or choose another"
        ) from None


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA case_sensitive_like = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        writing = conn.get_execution_options().get(WRITE_OPTION)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def begin_write(db: Session) -> None:
    """Open the transaction of ``db`` as a writer (``BEGIN IMMEDIATE`` on SQLite)."""
    db.connection(execution_options={WRITE_OPTION: True})


@contextmanager
def write_transaction(url: str) -> Iterator[Session]:
    """A one-off writing database session on its own engine (CLI, start-up); commits."""
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as db:
            begin_write(db)
            yield db
            db.commit()
    finally:
        engine.dispose()
