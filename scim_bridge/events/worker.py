"""The delivery worker: claims due deliveries, sends each on a small thread pool, finishes it.

Up to ``delivery_concurrency`` deliveries are sent at once, and up to ``_CLAIMED_PER_SLOT``
times as many are claimed and wait their turn (so the next ones are ready when a slot frees).
Sending threads only send and report; the loop records every reported outcome and claims as
many new rows as there is room for, in one short transaction, so a receiver that hangs holds one
slot for at most the timeout and never the others, and a busy worker pays one commit per round
of many deliveries, not two per delivery. A row that waited so long for a slot that less than a
timeout is left of its lease is handed back unsent (``released``: no attempt, due again at once)
instead of being sent while another worker may claim it. The loop
sleeps on a doorbell that a local commit adding deliveries rings (and that every finished send
rings); on PostgreSQL other instances' commits ring it through ``LISTEN``/``NOTIFY``; and a
poll every ``delivery_poll_ms`` covers anything missed (a notification lost with a broken
connection, a retry coming due).

It runs as a daemon thread in every ``scim-bridge serve`` process, or in the foreground as
``scim-bridge worker``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import queue
import socket
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from ..db import begin_write
from ..metrics import DELIVERY_ATTEMPTS, DELIVERY_LATENCY
from ..settings import Settings
from .outbox import (
    CHANNEL,
    RELEASED,
    Claimed,
    Outcome,
    RetryPolicy,
    Signer,
    anything_due,
    claim,
    finish,
)
from .senders import dead, retry, sender_for
from .urls import refusal

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

#: Rows claimed per sending slot. Rounds (one commit each) grow with the room a busy worker
#: has, so this sets how many deliveries share a commit; waiting rows are safe whatever it is,
#: since one is sent only while a whole timeout is left of its lease.
_CLAIMED_PER_SLOT = 16

Result = tuple[Claimed, Outcome]


def _count(results: list[Result], now: dt.datetime) -> None:
    """Each recorded attempt in the metrics, and each success's latency since its row was
    created (or replayed)."""
    for claimed, outcome in results:
        if outcome.result == RELEASED:
            continue  # never sent: not an attempt
        kind = claimed.receiver.kind
        DELIVERY_ATTEMPTS.labels(kind, outcome.result).inc()
        if outcome.result == "delivered":
            DELIVERY_LATENCY.labels(kind).observe(
                max(0.0, (now - claimed.deadline_from).total_seconds()))


class DeliveryWorker:
    def __init__(self, sessions: sessionmaker[Session], settings: Settings,
                 doorbell: threading.Event | None = None,
                 client: httpx.Client | None = None, signer: Signer | None = None) -> None:
        import httpx

        self.sessions = sessions
        self.signer = signer
        self.settings = settings
        self.doorbell = doorbell or threading.Event()
        self.owner = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._owns_client = client is None
        self.client = client or httpx.Client(
            timeout=httpx.Timeout(settings.delivery_timeout), follow_redirects=False
        )
        self.policy = RetryPolicy(base=settings.delivery_backoff_base_ms / 1000,
                                  cap=settings.delivery_backoff_cap,
                                  give_up=settings.delivery_give_up)
        self.stopping = threading.Event()
        #: Rows held at once, sending or waiting for a slot.
        self._room = _CLAIMED_PER_SLOT * settings.delivery_concurrency
        self._timeout = dt.timedelta(seconds=settings.delivery_timeout)
        self._reported: queue.SimpleQueue[Result] = queue.SimpleQueue()

    def send(self, claimed: Claimed) -> Outcome:
        """Send one claimed delivery with its kind's sender (no database work)."""
        sender = sender_for(claimed.receiver.kind)
        if sender is None:
            return dead(f"no sender for receiver kind '{claimed.receiver.kind}'")
        url = claimed.receiver.url
        refused = refusal(url, self.settings.receiver_urls) if url else None
        if refused:  # checked at registration, but a name may resolve elsewhere since
            return dead(f"receiver URL refused: {refused}")
        try:
            return sender(self.client, claimed)
        except Exception as error:  # a sender's bug must not strand the row under a lease
            log.exception("sender for %s failed on delivery %d", claimed.receiver.kind,
                          claimed.id)
            return retry(f"internal error: {type(error).__name__}")

    def finish_and_claim(self, results: list[Result], limit: int) -> list[Claimed]:
        """Record ``results`` and lease up to ``limit`` due rows, in one transaction."""
        now = self.settings.clock()
        if not results:
            if limit == 0:
                return []
            with self.sessions() as db:
                if not anything_due(db, now):
                    return []
        with self.sessions() as db:
            begin_write(db)
            lost = finish(db, results, self.owner, now, self.policy)
            if lost:
                log.warning("%d deliveries outlived their lease; another worker took them", lost)
            leased = claim(db, self.owner, now, self.settings.delivery_lease, limit) if limit \
                else []
            db.commit()
        if self.signer is not None:
            leased = [replace(row, signer=self.signer) for row in leased]
        _count(results, now)
        return leased

    def run_once(self) -> int:
        """Claim what is due now, send it all concurrently, finish it; returns how many."""
        claimed = self.finish_and_claim([], self.settings.delivery_concurrency)
        if claimed:
            with ThreadPoolExecutor(len(claimed)) as pool:
                outcomes = list(pool.map(self.attempt, claimed))
            self.finish_and_claim(list(zip(claimed, outcomes, strict=True)), 0)
        return len(claimed)

    def run(self) -> None:
        """Deliver until :meth:`stop`; in-flight deliveries are sent and recorded first."""
        poll = self.settings.delivery_poll_ms / 1000
        in_flight = 0
        self.listen()
        with ThreadPoolExecutor(self.settings.delivery_concurrency,
                                thread_name_prefix="delivery") as pool:
            while not self.stopping.is_set():
                self.doorbell.clear()
                results = self._take_reported()
                try:
                    claimed = self.finish_and_claim(
                        results, self._room - in_flight + len(results))
                except Exception:  # the database is away; unrecorded rows return with lease
                    log.exception("recording or claiming deliveries failed")
                    claimed = []
                    self.stopping.wait(poll)
                in_flight += len(claimed) - len(results)
                for row in claimed:
                    pool.submit(self._send_and_report, row)
                if not claimed and not results:
                    self.doorbell.wait(poll)
        try:
            self.finish_and_claim(self._take_reported(), 0)
        except Exception:
            log.exception("recording the last deliveries failed; their leases will expire")
        finally:
            if self._owns_client:
                self.client.close()

    def _take_reported(self) -> list[Result]:
        results = []
        while True:
            try:
                results.append(self._reported.get_nowait())
            except queue.Empty:
                return results

    def _send_and_report(self, claimed: Claimed) -> None:
        self._reported.put((claimed, self.attempt(claimed)))
        self.doorbell.set()

    def attempt(self, claimed: Claimed) -> Outcome:
        """Send a claimed row, or hand it back unsent when its lease is too short for a
        send (it waited that long for a free slot)."""
        return self.send(claimed) if self.sendable(claimed) else Outcome(RELEASED)

    def sendable(self, claimed: Claimed) -> bool:
        """Whether a whole timeout is left of the row's lease, so this send ends (or gives up)
        before any other worker may claim the row."""
        return (claimed.lease_until is None
                or self.settings.clock() + self._timeout < claimed.lease_until)

    def start(self) -> threading.Thread:
        """Run in a daemon thread (inside ``serve``); returns it."""
        self._thread = threading.Thread(target=self.run, name="delivery-worker", daemon=True)
        self._thread.start()
        return self._thread

    def listen(self) -> threading.Thread | None:
        """On PostgreSQL, ring the doorbell on every other instance's commit that added
        deliveries (``LISTEN``), from a daemon thread; ``None`` elsewhere."""
        url = self.sessions.kw["bind"].url
        if url.get_backend_name() != "postgresql":
            return None
        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._listener = threading.Thread(target=self._listen, args=(dsn,),
                                          name="delivery-listen", daemon=True)
        self._listener.start()
        return self._listener

    def _listen(self, dsn: str) -> None:
        import psycopg

        while not self.stopping.is_set():
            try:
                with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    self.doorbell.set()  # whatever was committed while not listening
                    while not self.stopping.is_set():
                        for _ in connection.notifies(timeout=1.0, stop_after=1):
                            self.doorbell.set()
            except psycopg.Error as error:  # the poll still runs; listen again shortly
                if not self.stopping.is_set():
                    log.warning("listening for deliveries failed (%s); retrying",
                                " ".join(str(error).split()))
                    self.stopping.wait(5)

    _thread: threading.Thread | None = None
    _listener: threading.Thread | None = None

    def stop(self, wait: float = 0) -> None:
        """Ask the loop (and the listener) to end; with ``wait``, give them that many seconds
        to finish."""
        self.stopping.set()
        self.doorbell.set()
        for thread in (self._thread, self._listener):
            if wait and thread is not None:
                thread.join(wait)
