"""The per-request hook every route gets: a start time and a request id (the caller's
``X-Request-Id`` when it is a sane token, else a new one), returned as ``X-Request-Id``; on
the way out the request is counted and timed (metrics.py) and logged as one line (logs.py).

Labels and log fields name the route template (``/scim/v2/Users/<user_id>``), never the raw
path: no ids in metric labels, no filter values in the log. Nothing from the headers, the query
or the body is logged but the request id, so no token or password can reach a log line.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from functools import lru_cache
from typing import Any

from flask import Flask, Response, g, request

from .logs import ACCESS_LOGGER
from .metrics import REQUEST_SECONDS, REQUESTS

#: An incoming id is echoed only when it is short and plain (no header injection, no log noise).
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
#: Methods a label may name; any other token a client sends is counted as "other".
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: The label and log value of a request no route matched (an unknown URL's path is not kept).
UNMATCHED = "unmatched"

_access = logging.getLogger(ACCESS_LOGGER)


def init_app(app: Flask) -> None:
    app.before_request(_start)
    app.after_request(_finish)


def _start() -> None:
    g.started = time.perf_counter()
    incoming = request.headers.get("X-Request-Id", "")
    g.request_id = incoming if _SANE_ID.fullmatch(incoming) else uuid.uuid4().hex


def _finish(response: Response) -> Response:
    """Registered first, so it runs last: it sees the final status of every response, errors
    included."""
    response.headers["X-Request-Id"] = request_id()
    route = request.url_rule.rule if request.url_rule is not None else UNMATCHED
    method = request.method if request.method in _METHODS else "other"
    duration_ms = elapsed_ms()
    counted, timed = _series(route, method, response.status_code)
    counted.inc()
    timed.observe(duration_ms / 1000)
    principal = g.get("principal")
    _access.info(
        "%s %s %d %.1f ms", method, route, response.status_code, duration_ms,
        extra={
            "request_id": request_id(),
            "tenant": principal.tenant_name if principal else None,
            "token_name": principal.token_name if principal else None,
            "method": method,
            "route": route,
            "status": response.status_code,
            "duration_ms": duration_ms,
            # gunicorn sets it from X-Forwarded-For only for its forwarded_allow_ips.
            "client_addr": request.remote_addr,
        },
    )
    return response


@lru_cache(maxsize=4096)  # routes x methods x statuses: a few hundred series at most
def _series(route: str, method: str, status: int) -> tuple[Any, Any]:
    """The request counter and latency histogram of one series, looked up once: a label
    lookup costs more than the count."""
    return (REQUESTS.labels(route=route, method=method, status=str(status)),
            REQUEST_SECONDS.labels(route=route, method=method))


def request_id() -> str:
    """This request's id (made on first use where the hook did not run, e.g. an early 4xx)."""
    if "request_id" not in g:
        g.request_id = uuid.uuid4().hex
    return str(g.request_id)


def elapsed_ms() -> float:
    started = g.get("started")
    return round((time.perf_counter() - started) * 1000, 3) if started else 0.0
