"""Whether the service can do its work: liveness (the database answers) and readiness (the
database answers at this version's schema, a SQLite file's disk takes writes, and Redis answers
when it is configured)."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session

from ..db import one_line, sqlite_disk_problem
from ..migrate import schema_problem

log = logging.getLogger(__name__)

#: The state of a check that passed; any other value says why it failed.
OK = "ok"
#: Seconds a readiness probe waits for Redis before calling it unreachable.
_REDIS_TIMEOUT = 1.0


def database_answers(db: Session) -> None:
    """Raises the database's own error when it does not answer a trivial query."""
    db.execute(text("SELECT 1"))


def readiness(db: Session, redis_url: str | None) -> dict[str, str]:
    """Each check by name, ``"ok"`` or why it fails in words safe to show anyone (no URL, no
    driver text: those go to the log). The migration check needs the database to answer."""
    checks: dict[str, str] = {}
    try:
        database_answers(db)
    except Exception as exc:  # any driver failure means "not ready", never a 500
        log.warning("readiness: the database does not answer: %s", one_line(exc))
        checks["database"] = "the database is not reachable"
        checks["migrations"] = "not checked: the database is not reachable"
    else:
        checks["database"] = OK
        checks["migrations"] = schema_problem(db.connection()) or OK
    database = db.get_bind().engine.url
    if database.get_backend_name() == "sqlite" and database.database:
        path = Path(database.database).resolve()
        if path.parent.is_dir():  # a missing directory is the database check's failure
            checks["disk"] = _sqlite_disk(path)
    if redis_url:
        checks["redis"] = _redis_answers(redis_url)
    return checks


_DISK_PROBLEMS = {
    "read-only": "the SQLite database's file or directory is read-only",
    "full": "the disk of the SQLite database is full",
}


def _sqlite_disk(path: Path) -> str:
    """A read-only or full disk answers reads but fails every write: not ready for an IdP."""
    problem = sqlite_disk_problem(str(path))
    return _DISK_PROBLEMS[problem] if problem else OK


def _redis_answers(url: str) -> str:
    """PING with the ``redis`` package; without it a configured Redis cannot be used at all."""
    try:
        redis = importlib.import_module("redis")
    except ImportError:
        return "SCIM_BRIDGE_REDIS_URL is set but the redis package is not installed"
    try:
        client = redis.Redis.from_url(url, socket_timeout=_REDIS_TIMEOUT,
                                      socket_connect_timeout=_REDIS_TIMEOUT)
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError) as exc:
        log.warning("readiness: Redis does not answer: %s", one_line(exc))
        return "Redis is not reachable"
    return OK
