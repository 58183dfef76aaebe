"""The SCIM request log: what an admin reads to answer "why did my Okta sync fail?".

Entries are buffered in memory and written in batches by a background thread, so logging
never adds a commit (and an fsync) to the request it describes. Retention is bounded per
tenant. Reading flushes first, so a reader in the same process sees every request.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from .db import begin_write
from .models import RequestLogEntry

log = logging.getLogger(__name__)


class RequestLog:
    def __init__(self, sessions: Callable[[], Session], retention: int, interval: float = 0.5):
        self._sessions = sessions
        self._retention = retention
        self._interval = interval
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._written = 0

    def add(self, entry: dict[str, Any]) -> None:
        # What arrived is logged as text a database can store (PostgreSQL refuses NUL).
        entry = {k: v.replace("\x00", "%00") if isinstance(v, str) else v for k, v in entry.items()}
        with self._lock:
            self._pending.append(entry)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="scim-bridge-request-log", daemon=True
                )
                self._thread.start()
                atexit.register(self.flush)
        if len(self._pending) >= 500:
            self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # the log must never take the service down
                log.exception("could not write the request log")

    def flush(self) -> None:
        with self._flush_lock:
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch:
                return
            with self._sessions() as session:
                begin_write(session)
                session.execute(insert(RequestLogEntry), batch)
                self._written += len(batch)
                if self._written >= 100:
                    self._written = 0
                    for tenant_id in {entry["tenant_id"] for entry in batch}:
                        self._prune(session, tenant_id)
                session.commit()

    def _prune(self, session: Session, tenant_id: int | None) -> None:
        oldest_kept = session.scalar(
            select(RequestLogEntry.id)
            .where(RequestLogEntry.tenant_id == tenant_id)
            .order_by(RequestLogEntry.id.desc())
            .offset(self._retention - 1)
            .limit(1)
        )
        if oldest_kept is not None:
            session.execute(
                delete(RequestLogEntry).where(
                    RequestLogEntry.tenant_id == tenant_id, RequestLogEntry.id < oldest_kept
                )
            )
