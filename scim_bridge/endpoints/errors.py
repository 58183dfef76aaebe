"""Every error of every route, rendered by one function (responses.render_error): our own
BridgeErrors, Werkzeug's HTTP errors (routing 404/405, 413) and anything unexpected, which is
logged with its traceback and answered 500 without details."""

from __future__ import annotations

import logging

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from ..errors import BridgeError
from .responses import is_scim, render_error

log = logging.getLogger(__name__)

_HTTP_DETAILS = {
    404: "no such endpoint",
    413: "the request body is larger than the allowed maximum",
}


def init_app(app: Flask) -> None:
    app.register_error_handler(BridgeError, _bridge_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)


def _bridge_error(error: BridgeError) -> Response:
    g.failure = error
    return _closing_if_refused(render_error(error))


def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    if status == 405:
        detail = f"method {request.method} is not allowed here"
    else:
        detail = _HTTP_DETAILS.get(status, error.description or error.name)
    failure = BridgeError(detail)
    failure.status = status
    failure.error = error.name.lower().replace(" ", "_")
    failure.reason = error.name.lower()
    if is_scim() and status == 413:
        failure.scim_type = None
    g.failure = failure
    response = _closing_if_refused(render_error(failure))
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        response.headers["Allow"] = ", ".join(sorted(error.valid_methods))
    return response


def _closing_if_refused(response: Response) -> Response:
    """A 413 may leave the rest of the body unread on the connection: it must never be parsed
    as the next request, so the response says ``Connection: close`` (the worker, see
    ``scim_bridge.workers``, then closes it)."""
    if response.status_code == 413:
        response.headers["Connection"] = "close"
    return response


def _unexpected(error: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path)
    failure = BridgeError("internal error; the request changed nothing")
    failure.status = 500
    failure.error = "server_error"
    failure.reason = "internal error"
    g.failure = failure
    current = g.pop("db", None)
    if current is not None:
        current.rollback()
        current.close()
    return render_error(failure)
