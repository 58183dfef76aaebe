"""Production serving with gunicorn: each worker builds its own app (and engine) after fork,
and, unless turned off, starts its own delivery worker thread there (threads do not survive a
fork, and each process's commits ring its own worker's doorbell)."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

from .settings import Settings


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

        app = create_app(self._settings)
        if self._deliver:  # load() runs in the worker process, after the fork
            app.extensions["scim_bridge"].delivery_worker().start()
        return app


def run(settings: Settings, *, host: str, port: int, workers: int, threads: int,
        deliver: bool = True) -> None:
    _Server(
        settings,
        {
            "bind": f"{host}:{port}",
            "workers": max(1, workers),
            "threads": max(1, threads),
            # gunicorn's sync/gthread workers, answering their own parse errors in our formats
            # and honouring the app's Connection: close (workers.py)
            "worker_class": ("scim_bridge.workers.ThreadWorker" if threads > 1
                             else "scim_bridge.workers.SyncWorker"),
            "accesslog": None,
            "timeout": 60,
            "keepalive": 75,
        },
        deliver=deliver,
    ).run()
