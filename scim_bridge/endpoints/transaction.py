"""The request's one database transaction: opened on first use (as a writer unless the request
only reads), committed once after a successful response, rolled back otherwise, and closed.
This is the one module of the edge that holds a SQLAlchemy session itself."""

from __future__ import annotations

import logging

from flask import Flask, Response, g, request
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from ..db import begin_write
from ..errors import BridgeError, Conflict, ServiceUnavailable
from .context import bridge
from .responses import render_error

log = logging.getLogger(__name__)

_READ_METHODS = {"GET", "HEAD", "OPTIONS"}


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
    except OperationalError:
        current.rollback()
        raise ServiceUnavailable("the database is busy; retry the request") from None
    finally:
        current.close()


def init_app(app: Flask) -> None:
    app.after_request(_commit_or_roll_back)
    app.teardown_appcontext(_close)
    app.register_error_handler(OperationalError, _database_unavailable)


def _commit_or_roll_back(response: Response) -> Response:
    try:
        finish_transaction(response.status_code < 400)
    except BridgeError as error:
        g.failure = error
        return render_error(error)
    return response


def _database_unavailable(error: OperationalError) -> Response:
    log.warning("database error on %s %s: %s", request.method, request.path, error.orig)
    _close(None)
    failure = ServiceUnavailable("the database is unavailable; retry the request")
    g.failure = failure
    response = render_error(failure)
    response.headers["Retry-After"] = "1"
    return response


def _close(_exc: BaseException | None) -> None:
    current: Session | None = g.pop("db", None)
    if current is not None:
        current.rollback()
        current.close()
