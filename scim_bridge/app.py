"""The application factory: no app at import time; tests pass their own settings."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, current_app, g, jsonify, request
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.exceptions import HTTPException

from .db import make_engine, make_sessionmaker, utcnow
from .endpoints.edge import finish_transaction, reject_nul_in_url
from .errors import BridgeError, NotModified, ServiceUnavailable
from .requestlog import RequestLog
from .settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Bridge:
    """What the app holds for every request: settings, database and the request log."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    request_log: RequestLog


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_payload_bytes
    # A tenant URL saved with a trailing slash must not turn into an HTML redirect.
    app.url_map.strict_slashes = False
    app.url_map.merge_slashes = False
    app.json.sort_keys = False  # type: ignore[attr-defined]
    engine = make_engine(settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    sessions = make_sessionmaker(engine)
    app.extensions["scim_bridge"] = Bridge(
        settings, engine, sessions, RequestLog(sessions, settings.request_log_retention)
    )

    from .endpoints import admin, health, scim, well_known
    from .endpoints import sessions as sessions_api
    from .revocation.keys import KeyRing

    app.extensions["scim_bridge.keys"] = KeyRing(sessions, settings)
    for blueprint in (scim.bp, health.bp, sessions_api.bp, admin.bp, well_known.bp):
        app.register_blueprint(blueprint)
    _register_error_handlers(app)
    app.before_request(reject_nul_in_url)
    # after_request hooks run last-registered first: commit, then log the final status.
    app.after_request(_log_scim_request)
    app.after_request(_commit_or_roll_back)
    app.teardown_appcontext(_close_session)
    return app


def _is_scim() -> bool:
    return request.path.startswith("/scim/v2")


def _register_error_handlers(app: Flask) -> None:
    from .endpoints.scim import scim_error

    @app.errorhandler(BridgeError)
    def bridge_error(error: BridgeError) -> Any:
        if isinstance(error, NotModified):
            return Response(status=304)
        g.failure = error
        return _render(error)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Any:
        status = error.code or 500
        detail = {
            404: "no such endpoint",
            405: f"method {request.method} is not allowed here",
            413: "the request body is larger than the allowed maximum",
        }.get(status, error.description or error.name)
        failure = BridgeError(detail)
        failure.status = status
        failure.error = error.name.lower().replace(" ", "_")
        failure.reason = error.name.lower()
        g.failure = failure
        if _is_scim():
            if status == 413:
                failure.scim_type = None
            return scim_error(failure)
        return json_error(status, failure.error, detail)

    @app.errorhandler(OperationalError)
    def database_unavailable(error: OperationalError) -> Any:
        log.warning("database error on %s %s: %s", request.method, request.path, error.orig)
        _close_session(None)
        failure = ServiceUnavailable("the database is unavailable; retry the request")
        g.failure = failure
        response = _render(failure)
        response.headers["Retry-After"] = "1"
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Any:
        log.exception("unhandled error on %s %s", request.method, request.path)
        failure = BridgeError("internal error; the request changed nothing")
        failure.status = 500
        failure.error = "server_error"
        failure.reason = "internal error"
        g.failure = failure
        session = g.pop("db_session", None)
        if session is not None:
            session.rollback()
            session.close()
        if _is_scim():
            return scim_error(failure)
        return json_error(500, "server_error", failure.detail)


def _render(error: BridgeError) -> Response:
    from .endpoints.scim import scim_error

    return scim_error(error) if _is_scim() else json_error(error.status, error.error, error.detail)


def _commit_or_roll_back(response: Response) -> Response:
    """The request's one transaction ends here: committed on success, else rolled back."""
    try:
        finish_transaction(response.status_code < 400)
    except BridgeError as error:
        g.failure = error
        return _render(error)
    return response


def json_error(status: int, error: str, description: str) -> Response:
    response = jsonify({"error": error, "error_description": description})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = f'Bearer error="{error}"'
    return response


def _log_scim_request(response: Response) -> Response:
    if not _is_scim():
        return response
    started = g.get("started")
    principal = g.get("principal")
    failure: BridgeError | None = g.get("failure")
    reason = None
    if failure is not None and response.status_code >= 400:
        reason = f"{failure.reason}: {failure.detail}"
    _bridge().request_log.add(
        {
            "tenant_id": principal.tenant_id if principal else None,
            "token_name": principal.token_name if principal else None,
            "method": request.method,
            "path": request.full_path.rstrip("?")[:2048],
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3) if started else 0.0,
            "reason": reason,
            "created_at": utcnow(),
        }
    )
    return response


def _bridge() -> Bridge:
    return current_app.extensions["scim_bridge"]


def _close_session(_exc: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.rollback()
        session.close()
