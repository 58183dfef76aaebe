"""Whether the service can do its work: liveness (the database answers) and readiness (the
database answers at this version's schema, and Redis answers when it is configured)."""

from __future__ import annotations

import importlib
import logging

from sqlalchemy import text
from sqlalchemy.orm import Session

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
        log.warning("readiness: the database does not answer: %s", _one_line(exc))
        checks["database"] = "the database is not reachable"
        checks["migrations"] = "not checked: the database is not reachable"
    else:
        checks["database"] = OK
        checks["migrations"] = schema_problem(db.connection()) or OK
    if redis_url:
        checks["redis"] = _redis_answers(redis_url)
    return checks


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
        log.warning("readiness: Redis does not answer: %s", _one_line(exc))
        return "Redis is not reachable"
    return OK


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
