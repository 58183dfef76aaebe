"""The request's one database transaction: opened on first use (as a writer unless the request
only reads), committed once after a successful response, rolled back otherwise, and closed.
This is the one module of the edge that holds a SQLAlchemy session itself. Introspection, the
hot path, reads with :func:`reads` instead: single statements on a bare connection, no
transaction around them.

A PostgreSQL deadlock or serialization failure is not an outage: the transaction is rolled back
and the view runs once more in a new one (the body is cached, so it reads the same); if that
fails too, the answer is 503 with ``Retry-After``.

A database that cannot do the work (unreachable, SQLite's lock held past the busy timeout, a
full or read-only disk), in the view or at the commit, is a 503 with ``Retry-After`` whose detail
says which, and one warning line in the log (no traceback: it is not a bug).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Flask, Response, current_app, g, request
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from ..db import Reader as Reader  # what :func:`db` and :func:`reads` both answer
from ..db import begin_write, one_line, single_reads, unavailable_cause
from ..errors import BridgeError, ConcurrentChange, Conflict, ServiceUnavailable
from ..metrics import DATABASE_ERRORS
from ..prepared import read_together as read_together  # two reads in one statement
from .context import bridge
from .responses import render_error

log = logging.getLogger(__name__)

_READ_METHODS = {"GET", "HEAD", "OPTIONS"}

#: PostgreSQL's SQLSTATEs for "retry the transaction": serialization_failure, deadlock_detected.
_CONFLICTS = frozenset({"40001", "40P01"})

#: Seconds a client should wait before retrying after a 503.
RETRY_AFTER = "1"


def db(*, write: bool | None = None) -> Session:
    """The request's session; its transaction is a writer unless the request only reads."""
    current: Session | None = g.get("db")
    if current is None:
        current = bridge().sessions()
        g.db = current
        if write if write is not None else request.method not in _READ_METHODS:
            begin_write(current)
    return current


def reads() -> Connection:
    """The request's connection for single-statement reads (:func:`scim_bridge.db.single_reads`),
    for a request that only reads, a statement or two, each of which stands alone."""
    current: Connection | None = g.get("reads")
    if current is None:
        current = g.reads = single_reads(bridge().engine)
    return current


def finish_transaction(succeeded: bool) -> None:
    """Commit on success, roll back otherwise; raises a BridgeError if the commit fails."""
    current: Session | None = g.pop("db", None)
    if current is None:
        return
    try:
        if succeeded:
            current.commit()
        else:
            current.rollback()
    except IntegrityError:
        current.rollback()
        raise Conflict("the change conflicts with another one made at the same time") from None
    except OperationalError as error:
        current.rollback()
        if is_conflict(error):
            raise _ConflictAtCommit from None
        raise _logged_unavailable(error, "at commit") from None
    finally:
        current.close()


def is_conflict(error: BaseException) -> bool:
    """Whether ``error`` is PostgreSQL refusing this transaction because of a concurrent one."""
    if not isinstance(error, DBAPIError):
        return False
    code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    return code in _CONFLICTS


def is_stale_connection(error: BaseException) -> bool:
    """Whether ``error`` is a connection found dead in the view (the pool invalidated it)."""
    return isinstance(error, DBAPIError) and bool(error.connection_invalidated)


class _ConflictAtCommit(Exception):
    """The commit met a conflict; the view wrapper retries, like a conflict in the view."""


def init_app(app: Flask) -> None:
    """Call after every blueprint is registered: it wraps the views then registered."""
    for endpoint, view in list(app.view_functions.items()):
        app.view_functions[endpoint] = _retried_once_on_conflict(view)
    app.after_request(_commit_or_roll_back)
    app.teardown_appcontext(_close)
    app.register_error_handler(OperationalError, _database_unavailable)
    app.register_error_handler(ServiceUnavailable, _unavailable)


def _retried_once_on_conflict(view: Callable[..., Any]) -> Callable[..., Any]:
    """Run the view and commit; on a PostgreSQL conflict roll back and do both once more."""

    @wraps(view)
    def run(**kwargs: Any) -> Any:
        for attempt in (1, 2):
            try:
                response = current_app.make_response(view(**kwargs))
                if response.status_code < 400:
                    finish_transaction(True)
                return response
            except (DBAPIError, _ConflictAtCommit) as error:
                if attempt == 1 and is_stale_connection(error):
                    # A pooled connection the database dropped while idle (a restart, a proxy
                    # cut): nothing was committed on it, and the pool now holds fresh ones.
                    _close(None)
                    DATABASE_ERRORS.labels(kind="reconnected").inc()
                    log.warning("database connection was lost while idle; %s %s retried on a "
                                "new one", request.method, request.path)
                    continue
                if isinstance(error, DBAPIError) and not is_conflict(error):
                    raise
                _close(None)
                DATABASE_ERRORS.labels(kind="conflict-retried" if attempt == 1
                                       else "conflict-503").inc()
                log.warning("concurrent-change conflict on %s %s (attempt %d)",
                            request.method, request.path, attempt)
        raise _concurrent_change()

    return run


def _concurrent_change() -> ConcurrentChange:
    return ConcurrentChange(
        "the database could not serialize this change with a concurrent one; retry"
    )


def _commit_or_roll_back(response: Response) -> Response:
    try:
        finish_transaction(response.status_code < 400)
    except _ConflictAtCommit:  # a response the view wrapper did not commit (a hook's own)
        DATABASE_ERRORS.labels(kind="conflict-503").inc()
        return _unavailable(_concurrent_change())
    except ServiceUnavailable as error:
        return _unavailable(error)
    except BridgeError as error:
        g.failure = error
        return render_error(error)
    return response


#: What a client is told for each of :func:`scim_bridge.db.unavailable_cause`'s answers.
_DETAILS = {
    "full": "the database's disk is full: no change can be stored; retry later",
    "read-only": "the database is read-only: no change can be stored; retry later",
    "busy": "the database is busy with another change; retry the request",
    "unreachable": "the database is unavailable; retry the request",
}


def _logged_unavailable(error: OperationalError, doing: str) -> ServiceUnavailable:
    """The 503 for ``error``, counted and logged on one line (the driver's words, which may
    name a host or a file, stay in the log)."""
    cause = unavailable_cause(error, bridge().engine.url)
    DATABASE_ERRORS.labels(kind="unavailable").inc()
    log.warning("database %s %s on %s %s: %s", cause, doing, request.method, request.path,
                one_line(error.orig or error))
    return ServiceUnavailable(_DETAILS[cause])


def _database_unavailable(error: OperationalError) -> Response:
    _close(None)
    return _unavailable(_logged_unavailable(error, "during the request"))


def _unavailable(error: ServiceUnavailable) -> Response:
    """Every 503 of the request path says when to come back."""
    _close(None)
    g.failure = error
    response = render_error(error)
    response.headers["Retry-After"] = RETRY_AFTER
    return response


def _close(_exc: BaseException | None) -> None:
    current: Session | None = g.pop("db", None)
    if current is not None:
        current.rollback()
        current.close()
    connection: Connection | None = g.pop("reads", None)
    if connection is not None:
        connection.close()
