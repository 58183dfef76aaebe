"""Production serving with gunicorn: each worker builds its own app (and engine) after fork."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

from .settings import Settings


class _Server(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self._settings = settings
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from .app import create_app
        from .proxy import TrustedProxy

        return TrustedProxy(create_app(self._settings), self._settings.forwarded_allow_ips)


def run(settings: Settings, *, host: str, port: int, workers: int, threads: int) -> None:
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
            # X-Forwarded-Proto from these proxies only (X-Forwarded-For: proxy.py)
            "forwarded_allow_ips": settings.forwarded_allow_ips,
            "timeout": 60,
            "keepalive": 75,
        },
    ).run()
