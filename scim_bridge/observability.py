"""The per-request hook every route gets: a start time and a request id (the caller's
``X-Request-Id`` when it is a sane token, else a new one), returned as ``X-Request-Id``.
Metrics and structured logs attach here."""

from __future__ import annotations

import re
import time
import uuid

from flask import Flask, Response, g, request

#: An incoming id is echoed only when it is short and plain (no header injection, no log noise).
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def init_app(app: Flask) -> None:
    app.before_request(_start)
    app.after_request(_finish)


def _start() -> None:
    g.started = time.perf_counter()
    incoming = request.headers.get("X-Request-Id", "")
    g.request_id = incoming if _SANE_ID.fullmatch(incoming) else uuid.uuid4().hex


def _finish(response: Response) -> Response:
    response.headers["X-Request-Id"] = request_id()
    return response


def request_id() -> str:
    """This request's id (made on first use where the hook did not run, e.g. an early 4xx)."""
    if "request_id" not in g:
        g.request_id = uuid.uuid4().hex
    return str(g.request_id)


def elapsed_ms() -> float:
    started = g.get("started")
    return round((time.perf_counter() - started) * 1000, 3) if started else 0.0
