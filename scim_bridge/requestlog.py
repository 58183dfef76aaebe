"""The SCIM request log: what an admin reads to answer "why did my Okta sync fail?".

Entries are buffered in memory and written in batches by a background thread, so logging
never adds a commit (and an fsync) to the request it describes. Retention is bounded per
tenant. Reading flushes first, so a reader in the same process sees every request.

A batch the database refuses (SQLite locked past its busy timeout, PostgreSQL down) is kept
for the next flush and retried with back-off; the buffer is capped, and entries dropped to
respect the cap are counted and reported in the application log, never lost silently.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import String, delete, insert, select
from sqlalchemy.orm import Session

from .db import begin_write
from .metrics import REQUEST_LOG_PENDING
from .models import RequestLogEntry
from .storable import storable_text

log = logging.getLogger(__name__)

#: Entries held in memory at most while the database cannot take them (about 1 kB each).
MAX_PENDING = 10_000
#: A full batch wakes the writer early.
BATCH_SIZE = 500
#: Longest wait between two attempts while the database keeps refusing.
MAX_BACKOFF = 30.0


class RequestLog:
    def __init__(
        self,
        sessions: Callable[[], Session],
        retention: int,
        interval: float = 0.5,
        max_pending: int = MAX_PENDING,
    ):
        self._sessions = sessions
        self._retention = retention
        self._interval = interval
        self._max_pending = max_pending
        # Pruning runs a query per tenant; amortise it over 1% of the retention.
        self._prune_every = max(1, min(100, retention // 100))
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        #: The running writer thread and the event that ends it.
        self._writer: tuple[threading.Thread, threading.Event] | None = None
        self._since_prune: dict[int | None, int] = {}
        self._dropped = 0
        self._failing = False

    def add(self, entry: dict[str, Any]) -> None:
        entry = {key: _storable(key, value) for key, value in entry.items()}
        with self._lock:
            self._pending.append(entry)
            self._trim()
            pending = len(self._pending)
            if self._writer is None:
                stop = threading.Event()
                thread = threading.Thread(target=self._run, args=(stop,),
                                          name="scim-bridge-request-log", daemon=True)
                self._writer = thread, stop
                thread.start()
                atexit.register(self._flush_at_exit)
        if pending >= BATCH_SIZE:
            self._wake.set()

    def close(self) -> None:
        """Stop the writer thread and write what is pending, for an app that is done (a test's,
        a benchmark's); an entry added later starts a new writer."""
        with self._lock:
            writer, self._writer = self._writer, None
        if writer is None:
            return
        thread, stop = writer
        stop.set()
        self._wake.set()
        thread.join(timeout=MAX_BACKOFF)
        atexit.unregister(self._flush_at_exit)
        self._flush_at_exit()

    def _run(self, stop: threading.Event) -> None:
        delay = self._interval
        while True:
            if delay > self._interval:
                stop.wait(delay)  # the database refused the last batch: do not spin on it
            else:
                self._wake.wait(delay)
            if stop.is_set():
                return  # close() writes what is left
            self._wake.clear()
            try:
                self.flush()
                delay = self._interval
            except Exception:  # the log must never take the service down; flush() said why
                delay = min(delay * 2, MAX_BACKOFF)

    def flush(self) -> None:
        """Write what is pending; on failure keep it for the next flush and raise."""
        with self._flush_lock:
            with self._lock:
                batch, self._pending = self._pending, []
            self._report_dropped()
            if not batch:
                return
            try:
                self._write(batch)
            except Exception as error:
                self._keep(batch)
                with self._lock:
                    waiting = len(self._pending)
                log.warning(
                    "could not write %d request log entries (%s); %d kept for the next attempt",
                    len(batch), _describe(error), waiting,
                )
                self._report_dropped()
                self._failing = True
                raise
            with self._lock:
                REQUEST_LOG_PENDING.set(len(self._pending))
            if self._failing:
                self._failing = False
                log.warning("request log written again: %d held-back entries stored", len(batch))

    def _write(self, batch: list[dict[str, Any]]) -> None:
        with self._sessions() as db:
            begin_write(db)
            db.execute(insert(RequestLogEntry), batch)
            counts = dict(self._since_prune)
            for entry in batch:
                counts[entry["tenant_id"]] = counts.get(entry["tenant_id"], 0) + 1
            due = [tenant for tenant, count in counts.items() if count >= self._prune_every]
            for tenant_id in due:
                self._prune(db, tenant_id)
            db.commit()
        # Only once committed: a failed batch is retried, and counted again then.
        for tenant_id in due:
            counts.pop(tenant_id)
        self._since_prune = counts

    def _keep(self, batch: list[dict[str, Any]]) -> None:
        """Put a refused batch back in front of what arrived since, oldest first."""
        with self._lock:
            self._pending = batch + self._pending
            self._trim()

    def _trim(self) -> None:
        """Drop the oldest entries beyond the cap (caller holds ``_lock``); the gauge shows
        what is left to write."""
        excess = len(self._pending) - self._max_pending
        if excess > 0:
            del self._pending[:excess]
            self._dropped += excess
        REQUEST_LOG_PENDING.set(len(self._pending))

    def _report_dropped(self) -> None:
        with self._lock:
            dropped, self._dropped = self._dropped, 0
        if dropped:
            log.error(
                "request log: dropped the %d oldest entries; the database did not take them "
                "and at most %d are held in memory", dropped, self._max_pending,
            )

    def _flush_at_exit(self) -> None:
        try:
            self.flush()
        except Exception:
            with self._lock:
                lost, self._pending = len(self._pending), []
            log.error("request log: %d entries dropped at exit; the database did not take them",
                      lost)

    def _prune(self, db: Session, tenant_id: int | None) -> None:
        oldest_kept = db.scalar(
            select(RequestLogEntry.id)
            .where(RequestLogEntry.tenant_id == tenant_id)
            .order_by(RequestLogEntry.id.desc())
            .offset(self._retention - 1)
            .limit(1)
        )
        if oldest_kept is not None:
            db.execute(
                delete(RequestLogEntry).where(
                    RequestLogEntry.tenant_id == tenant_id, RequestLogEntry.id < oldest_kept
                )
            )


#: Column lengths, so an entry never holds more than its column takes (PostgreSQL refuses it).
_LENGTHS: dict[str, int] = {
    column.name: column.type.length
    for column in RequestLogEntry.__table__.columns
    if isinstance(column.type, String) and column.type.length
}


def _storable(key: str, value: Any) -> Any:
    """Text a database takes: escapes in place of NUL and lone surrogates, cut to its column
    (escapes make text longer). One entry the database refuses would fail its whole batch."""
    if not isinstance(value, str):
        return value
    text = storable_text(value)
    limit = _LENGTHS.get(key)
    return text if limit is None else text[:limit]


def _describe(error: BaseException) -> str:
    """The database's own words, without the SQL statement and its parameters."""
    original = getattr(error, "orig", None)
    return str(original if original is not None else error).splitlines()[0]
