"""Production serving with gunicorn: each worker builds its own app (and engine) after fork,
and, unless turned off, starts its own delivery worker thread there (threads do not survive a
fork, and each process's commits ring its own worker's doorbell).

Metrics: every worker writes its values to files in one directory (metrics.py), and a worker
that exits is marked dead there. :func:`listen_for_metrics` serves those files' sums on
127.0.0.1 from a thread of the master: one listener however many workers there are, outside
the app (no token, no request log), alive while workers die and are replaced. It starts before
gunicorn, so a port in use stops ``serve`` with one line instead of a half-started server.
Logs: one ``logconfig_dict`` (logs.py) for gunicorn's error log and the application's loggers,
in master and workers.
"""

from __future__ import annotations

import os
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger
from prometheus_client import start_http_server

from . import logs, metrics
from .settings import Settings

#: The only address ``--metrics-port`` listens on: metrics are not for the public surface.
METRICS_HOST = "127.0.0.1"

#: Where gunicorn's worker heartbeat file goes: it is touched on every turn of a worker's loop,
#: and on a disk-backed directory that touch waits behind other writers' journal flushes
#: (gunicorn's own advice, "Blocking os.fchmod"). Memory-backed when the machine has one.
_HEARTBEAT_DIR = "/dev/shm"


class _Logger(Logger):  # type: ignore[misc]
    """gunicorn's logger without its access log: observability.py logs each request once.
    Any ``logconfig_dict`` turns gunicorn's on, and it then builds a dict of every header and
    environ entry per request, for a logger that drops the line."""

    @property
    def access_log_enabled(self) -> bool:
        return False


class _Server(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings, options: dict[str, Any], *, deliver: bool) -> None:
        self._settings = settings
        self._options = options
        self._deliver = deliver
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from .app import create_app
        from .proxy import TrustedProxy

        app = create_app(self._settings)
        if self._deliver:  # load() runs in the worker process, after the fork
            app.extensions["scim_bridge"].delivery_worker().start()
        return TrustedProxy(app, self._settings.forwarded_allow_ips)


def run(settings: Settings, *, host: str, port: int, workers: int, threads: int,
        metrics_port: int | None = None, log_format: str | None = None,
        deliver: bool = True) -> None:
    _Server(
        settings,
        options(settings, host=host, port=port, workers=workers, threads=threads,
                metrics_port=metrics_port, log_format=log_format),
        deliver=deliver,
    ).run()


def options(settings: Settings, *, host: str, port: int, workers: int, threads: int,
            metrics_port: int | None = None, log_format: str | None = None) -> dict[str, Any]:
    """gunicorn's settings for ``serve``."""
    return {
        "bind": f"{host}:{port}",
        "workers": max(1, workers),
        "threads": max(1, threads),
        # gunicorn's sync/gthread workers, answering their own parse errors in our formats
        # and honouring the app's Connection: close (workers.py)
        "worker_class": ("scim_bridge.workers.ThreadWorker" if threads > 1
                         else "scim_bridge.workers.SyncWorker"),
        "accesslog": None,  # observability.py logs each request once, with its route
        "logger_class": _Logger,
        "worker_tmp_dir": _HEARTBEAT_DIR if os.access(_HEARTBEAT_DIR, os.W_OK) else None,
        "logconfig_dict": logs.logging_config(log_format or settings.log_format),
        # X-Forwarded-Proto from these proxies only (X-Forwarded-For: proxy.py)
        "forwarded_allow_ips": settings.forwarded_allow_ips,
        "timeout": 60,
        "keepalive": 75,
        "child_exit": _child_exit,
        "when_ready": _announcing_metrics(metrics_port),
    }


def listen_for_metrics(port: int, settings: Settings | None = None) -> None:
    """Serve ``/metrics`` (every worker's sums, and with ``settings`` the outbox gauges read
    from its database at each scrape) on 127.0.0.1:``port`` from a daemon thread; raises
    OSError when the port cannot be bound."""
    registry = metrics.multiprocess_registry()
    if settings is not None:
        registry.register(metrics.OutboxGauges(_outbox_reader(settings)))
    start_http_server(port, addr=METRICS_HOST, registry=registry)


def _outbox_reader(settings: Settings) -> Any:
    """Reads the outbox's state with an engine of the master's own, made at the first scrape
    (after gunicorn forked, so no worker inherits its connections)."""
    from .db import make_engine, make_sessionmaker
    from .services import deliveries

    made: list[Any] = []

    def read() -> list[metrics.OutboxState]:
        if not made:
            made.append(make_sessionmaker(make_engine(
                settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)))
        with made[0]() as db:
            return deliveries.outbox_state(db, settings.clock())

    return read


def _child_exit(_server: Any, worker: Any) -> None:
    metrics.mark_process_dead(worker.pid)


def _announcing_metrics(metrics_port: int | None) -> Any:
    """gunicorn's ``when_ready`` hook: say in the log where the metrics listener is."""

    def when_ready(server: Any) -> None:
        if metrics_port is not None:
            server.log.info("metrics on http://%s:%d/metrics", METRICS_HOST, metrics_port)

    return when_ready
