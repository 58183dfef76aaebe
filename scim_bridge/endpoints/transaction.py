"""The request's one database transaction: opened on first use (as a writer unless the request
only reads), committed once after a successful response, rolled back otherwise, and closed.
This is the one module of the edge that holds a SQLAlchemy session itself.

A PostgreSQL deadlock or serialization failure is not an outage: the transaction is rolled back
and the view runs once more in a new one (the body is cached, so it reads the same); if that
fails too, the answer is 503 with ``Retry-After``. Every other database error keeps its answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Flask, Response, current_app, g, request
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from ..db import begin_write
from ..errors import BridgeError, ConcurrentChange, Conflict, ServiceUnavailable
from ..metrics import DATABASE_ERRORS
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
        DATABASE_ERRORS.labels(kind="unavailable").inc()
        raise ServiceUnavailable("the database is busy; retry the request") from None
    finally:
        current.close()


def is_conflict(error: BaseException) -> bool:
    """Whether ``error`` is PostgreSQL refusing this transaction because of a concurrent one."""
    if not isinstance(error, DBAPIError):
        return False
    code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    return code in _CONFLICTS


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


def _database_unavailable(error: OperationalError) -> Response:
    log.warning("database error on %s %s: %s", request.method, request.path, error.orig)
    DATABASE_ERRORS.labels(kind="unavailable").inc()
    _close(None)
    return _unavailable(ServiceUnavailable("the database is unavailable; retry the request"))


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
