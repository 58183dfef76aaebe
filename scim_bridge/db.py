"""Engine, database-session factory and the declarative base.

SQLite gets WAL, a busy timeout, case-sensitive LIKE (the filter compiler folds case itself)
and ``BEGIN IMMEDIATE`` for writing transactions, so concurrent writers queue on the lock
instead of failing to upgrade a read lock.

A pooled PostgreSQL connection the server closed while it sat idle (a restart, a proxy or
failover cutting it) is found at checkout, without a round trip, and the pool starts afresh.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from select import POLLERR, POLLHUP, POLLIN, poll
from typing import Any

from sqlalchemy import URL, Connection, DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InvalidatePoolError, NoSuchModuleError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

#: Execution option a request sets on its connection when it will write.
WRITE_OPTION = "scim_bridge_write"
#: Execution option of a connection whose statements each run alone, outside a transaction.
SINGLE_READS_OPTION = "scim_bridge_single_reads"

#: What a read needs: a database session, or the bare connection of :func:`single_reads`.
Reader = Session | Connection

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
        engine = create_engine(parsed, pool_size=10, max_overflow=20,
                               connect_args=connect_args)
        event.listen(engine, "checkout", _refuse_hung_up_connection)
        return engine
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


def _refuse_hung_up_connection(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
    """At checkout: an idle connection has nothing to read unless the server hung up (or said
    why it is about to). Cheaper than a pre-ping's round trip on every request; a connection
    that dies after checkout is the view's retry's business."""
    if dbapi_conn.closed or _readable(dbapi_conn.fileno()):
        raise InvalidatePoolError("the database closed an idle pooled connection")


def _readable(fd: int) -> bool:
    poller = poll()
    poller.register(fd, POLLIN | POLLERR | POLLHUP)
    return bool(poller.poll(0))


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
        options = conn.get_execution_options()
        if options.get(SINGLE_READS_OPTION):
            return  # pysqlite runs each statement in its own implicit transaction
        conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get(WRITE_OPTION) else "BEGIN")


#: Why a database refuses work, from the driver's error: SQLite's result code names (extended
#: ones start with these) and PostgreSQL's SQLSTATEs.
_SQLITE_CAUSES = (("SQLITE_FULL", "full"), ("SQLITE_READONLY", "read-only"),
                  ("SQLITE_BUSY", "busy"), ("SQLITE_LOCKED", "busy"))
_POSTGRES_CAUSES = {"53100": "full", "25006": "read-only"}


def unavailable_cause(error: DBAPIError, url: URL) -> str:
    """``"full"`` (no space left), ``"read-only"`` (a read-only file, mount or standby),
    ``"busy"`` (SQLite's lock held past the busy timeout) or ``"unreachable"`` (any other).
    SQLite cannot open its files on a read-only mount: the disk of ``url`` tells why."""
    name = getattr(error.orig, "sqlite_errorname", None)
    if name:
        cause = next((cause for prefix, cause in _SQLITE_CAUSES if name.startswith(prefix)),
                     None)
        return cause or (url.database and sqlite_disk_problem(url.database)) or "unreachable"
    code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    return _POSTGRES_CAUSES.get(code or "", "unreachable")


def sqlite_disk_problem(path: str) -> str | None:
    """``"read-only"`` or ``"full"`` when the disk of the SQLite file ``path`` (and the WAL
    files beside it) takes no writes; ``None`` when it does, or its directory is missing."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        return None
    writable = os.access(directory, os.W_OK) and (
        not os.path.exists(path) or os.access(path, os.W_OK))
    if not writable:  # a read-only mount fails this even for root
        return "read-only"
    if os.statvfs(directory).f_bavail == 0:
        return "full"
    return None


def one_line(error: BaseException) -> str:
    """An error's message on one log line (drivers write several)."""
    return " ".join(str(error).split())


def single_reads(engine: Engine) -> Connection:
    """A pooled connection for work made only of single-statement reads (introspection): no
    transaction around them, so no ``BEGIN`` or ``COMMIT`` (two round trips on PostgreSQL),
    and each read sees what was committed when it ran. Close it to return it to the pool."""
    connection = engine.connect()
    if engine.dialect.name == "sqlite":
        return connection.execution_options(**{SINGLE_READS_OPTION: True})
    return connection.execution_options(isolation_level="AUTOCOMMIT")


def connection_of(db: Reader) -> Connection:
    """The connection under ``db`` (Core statements skip the ORM's execution path)."""
    return db.connection() if isinstance(db, Session) else db


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
