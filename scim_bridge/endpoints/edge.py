"""What every blueprint shares: the request's database session and transaction, the parsed
JSON body, and the app's settings. The transaction commits once, here, at the edge."""

from __future__ import annotations

import json
from typing import Any

from flask import current_app, g, request
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from ..db import begin_write
from ..errors import Conflict, InvalidSyntax, ServiceUnavailable
from ..settings import Settings

_READ_METHODS = {"GET", "HEAD", "OPTIONS"}


def settings() -> Settings:
    return current_app.extensions["scim_bridge"].settings


def db(*, write: bool | None = None) -> Session:
    """The request's session; its transaction is a writer unless the request only reads."""
    session: Session | None = g.get("db_session")
    if session is None:
        session = current_app.extensions["scim_bridge"].sessions()
        g.db_session = session
        if write if write is not None else request.method not in _READ_METHODS:
            begin_write(session)
    return session


def finish_transaction(succeeded: bool) -> None:
    """Commit on success, roll back otherwise; raises a BridgeError if the commit fails."""
    session: Session | None = g.pop("db_session", None)
    if session is None:
        return
    try:
        if succeeded:
            session.commit()
        else:
            session.rollback()
    except IntegrityError:
        session.rollback()
        raise Conflict("the change conflicts with another one made at the same time") from None
    except OperationalError:
        session.rollback()
        raise ServiceUnavailable("the database is busy; retry the request") from None
    finally:
        session.close()


def json_body(*, allow_nul: bool = False) -> Any:
    """The parsed body; with ``allow_nul`` the caller rejects NUL itself (Bulk, per operation)."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise InvalidSyntax("the request body is empty; send a JSON object")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidSyntax(f"the request body is not valid JSON: {exc}") from None
    if not allow_nul and _has_nul(body):
        raise InvalidSyntax("the request body contains a NUL character, which no value may hold")
    return body


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


def reject_nul_in_url() -> None:
    """No database stores NUL: refuse it in the path or query before anything reads them."""
    if "\x00" in request.path or "\x00" in request.query_string.decode("latin-1"):
        raise InvalidSyntax("the URL contains a NUL character")
    if any("\x00" in key + value for key, value in request.args.items(multi=True)):
        raise InvalidSyntax("the URL contains a NUL character")


def base_url() -> str:
    public = settings().public_url
    return (public or request.host_url).rstrip("/")
