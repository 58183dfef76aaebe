"""gunicorn workers (sync and gthread) that answer in the bridge's formats.

gunicorn answers a request it cannot parse itself (request line too long: 414, too many or too
large headers: 431, a malformed request: 400) with an HTML page. These workers keep gunicorn's
decision (status, warning, access log) and send that status as a SCIM Error under ``/scim/v2``
and a JSON error elsewhere, built by :func:`scim_bridge.errors.error_document` like the app's.

They also honour ``Connection: close`` from the app, which gunicorn drops as a hop-by-hop
header: the app sends it with a 413 whose body it did not read, and the rest of that body must
never be parsed as a next request.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from gunicorn import util
from gunicorn.workers import gthread, sync

from .errors import BridgeError, error_document

__all__ = ["SyncWorker", "ThreadWorker"]

#: Enough of the request line to see whether its target is under /scim/v2.
_HEAD_BYTES = 256
_SCIM_PREFIX = "/scim/v2"
_DETAILS = {
    400: "the request is not valid HTTP",
    414: "the request line is longer than the server accepts",
    431: "the request has more or larger header fields than the server accepts",
    500: "internal error; the request changed nothing",
}

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _Captured:
    """The client socket as gunicorn's ``handle_error`` sees it: what it writes (its HTML
    page) is kept, not sent; everything else is the real socket."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.written = b""

    def gettimeout(self) -> float:
        return 0.0  # gunicorn's write_nonblock then writes without touching blocking mode

    def sendall(self, data: bytes) -> None:
        self.written += data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class _BridgeResponses:
    """What both workers add to gunicorn's: JSON errors and ``Connection: close``."""

    _head = threading.local()
    cfg: Any
    log: Any
    wsgi: WSGIApp

    def load_wsgi(self) -> None:
        super().load_wsgi()  # type: ignore[misc]
        self.wsgi = _honouring_connection_close(self.wsgi)

    def _remember_head(self, client: Any, buffered: bytes = b"") -> None:
        """Peek (without consuming) at the start of the request, for ``handle_error``, which
        gunicorn calls without the path when the request line itself was refused."""
        head = buffered
        if not head:
            try:
                head = client.recv(_HEAD_BYTES, socket.MSG_PEEK)
            except OSError:
                head = b""
        self._head.value = head

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        captured = _Captured(client)
        super().handle_error(req, captured, addr, exc)  # type: ignore[misc]
        status_line = captured.written.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        if len(status_line) < 3 or not status_line[1].isdigit():
            return  # gunicorn wrote nothing we understand (it already logged why)
        status, reason = int(status_line[1]), status_line[2]
        failure = BridgeError(_DETAILS.get(status, reason.lower()))
        failure.status = status
        failure.error = reason.lower().replace(" ", "_")
        scim = _is_scim(req, getattr(self._head, "value", b""))
        body = json.dumps(error_document(failure, scim=scim)).encode("utf-8")
        content_type = "application/scim+json" if scim else "application/json"
        head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n")
        try:
            util.write_nonblock(client, head.encode("latin-1") + body)
        except Exception:
            self.log.debug("Failed to send error message.")


class SyncWorker(_BridgeResponses, sync.SyncWorker):  # type: ignore[misc]
    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        self._remember_head(client)
        super().handle(listener, client, addr)


class ThreadWorker(_BridgeResponses, gthread.ThreadWorker):  # type: ignore[misc]
    def handle(self, conn: Any) -> Any:
        # gthread waits (bounded) for a new connection's first bytes, else defers it to its
        # poller; waiting here first keeps that bound and lets the peek see the request line.
        if not conn.initialized and not conn.wait_for_data(gthread.DEFAULT_WORKER_DATA_TIMEOUT):
            return gthread._DEFER
        # A kept-alive connection's parser may already hold the next request (read ahead).
        read_ahead = getattr(getattr(conn.parser, "unreader", None), "buf", None)
        self._remember_head(conn.sock, read_ahead.getvalue() if read_ahead is not None else b"")
        return super().handle(conn)


def _is_scim(req: Any, head: bytes) -> bool:
    """Whether the request targets ``/scim/v2``: from gunicorn's parsed request when there is
    one, else from the peeked request line (``METHOD SP target SP ...``)."""
    path = getattr(req, "path", None)
    if path is None:
        parts = head.split(b" ", 2)
        target = parts[1].decode("latin-1") if len(parts) > 1 else ""
        try:
            path = target if target.startswith("/") else urlsplit(target).path
        except ValueError:
            path = ""
    return str(path).startswith(_SCIM_PREFIX)


def _honouring_connection_close(app: WSGIApp) -> WSGIApp:
    """Close the connection after a response whose headers say ``Connection: close``. gunicorn
    hands the app its response's bound ``start_response``; ``force_close`` is how its own
    workers close."""

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if any(name.lower() == "connection" and value.strip().lower() == "close"
                   for name, value in headers):
                closer = getattr(getattr(start_response, "__self__", None), "force_close", None)
                if closer is not None:
                    closer()
            return start_response(status, headers, exc_info)

        return app(environ, start)

    return application
