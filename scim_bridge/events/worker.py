"""The delivery worker: claims due deliveries, sends each on a small thread pool, finishes it.

Up to ``delivery_concurrency`` deliveries are in flight at once and each is finished as soon as
its own answer comes, so a receiver that hangs holds one slot for at most the timeout and never
the others. The loop sleeps on a doorbell that a local commit adding deliveries rings (and that
a finished delivery rings, since it may unblock the next row of its subject), with a poll every
``delivery_poll_ms`` for commits made by other instances.

It runs as a daemon thread in every ``scim-bridge serve`` process, or in the foreground as
``scim-bridge worker``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from ..settings import Settings

if TYPE_CHECKING:
    import httpx
from .outbox import Claimed, Outcome, RetryPolicy, anything_due, claim, finish
from .senders import dead, sender_for

log = logging.getLogger(__name__)


class DeliveryWorker:
    def __init__(self, sessions: sessionmaker[Session], settings: Settings,
                 doorbell: threading.Event | None = None,
                 client: httpx.Client | None = None) -> None:
        self.sessions = sessions
        self.settings = settings
        self.doorbell = doorbell or threading.Event()
        self.owner = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        import httpx

        self.client = client or httpx.Client(
            timeout=httpx.Timeout(settings.delivery_timeout), follow_redirects=False
        )
        self.policy = RetryPolicy(base=settings.delivery_backoff_base_ms / 1000,
                                  cap=settings.delivery_backoff_cap,
                                  give_up=settings.delivery_give_up)
        self.stopping = threading.Event()
        self._free = settings.delivery_concurrency
        self._lock = threading.Lock()

    def _now(self) -> dt.datetime:
        return self.settings.clock()

    def _claim(self, limit: int) -> list[Claimed]:
        now = self._now()
        with self.sessions() as db:
            if not anything_due(db, now):
                return []
        with self.sessions() as db:
            return claim(db, self.owner, now, self.settings.delivery_lease, limit)

    def deliver(self, claimed: Claimed) -> Outcome:
        """Send one claimed delivery with its kind's sender and finish it."""
        sender = sender_for(claimed.receiver.kind)
        try:
            outcome = (sender(self.client, claimed) if sender is not None
                       else dead(f"no sender for receiver kind '{claimed.receiver.kind}'"))
        except Exception as error:  # a sender's bug must not strand the row under a lease
            log.exception("sender for %s failed on delivery %d", claimed.receiver.kind,
                          claimed.id)
            outcome = Outcome("retry", error=f"internal error: {type(error).__name__}")
        with self.sessions() as db:
            if not finish(db, claimed, self.owner, outcome, self._now(), self.policy):
                log.warning("delivery %d: lease lost before it finished", claimed.id)
        return outcome

    def run_once(self) -> int:
        """Claim what is due now, send it all concurrently, finish it; returns how many."""
        claimed = self._claim(self.settings.delivery_concurrency)
        if claimed:
            with ThreadPoolExecutor(len(claimed)) as pool:
                list(pool.map(self.deliver, claimed))
        return len(claimed)

    def run(self) -> None:
        """Deliver until :meth:`stop`; in-flight deliveries finish before it returns."""
        poll = self.settings.delivery_poll_ms / 1000
        with ThreadPoolExecutor(self.settings.delivery_concurrency,
                                thread_name_prefix="delivery") as pool:
            while not self.stopping.is_set():
                self.doorbell.clear()
                free = self._reserve()
                try:
                    claimed = self._claim(free) if free else []
                except Exception:  # the database is away: log, wait, try again
                    log.exception("claiming deliveries failed")
                    claimed = []
                self._release(free - len(claimed))
                for row in claimed:
                    pool.submit(self._deliver_and_ring, row)
                if not claimed:
                    self.doorbell.wait(poll)

    def _reserve(self) -> int:
        """Take every free slot for one claim; what the claim does not fill goes back."""
        with self._lock:
            free, self._free = self._free, 0
            return free

    def _release(self, count: int) -> None:
        with self._lock:
            self._free += count

    def _deliver_and_ring(self, claimed: Claimed) -> None:
        try:
            self.deliver(claimed)
        except Exception:
            log.exception("finishing delivery %d failed; its lease will expire", claimed.id)
        finally:
            self._release(1)
            self.doorbell.set()

    def start(self) -> threading.Thread:
        """Run in a daemon thread (inside ``serve``); returns it."""
        thread = threading.Thread(target=self.run, name="delivery-worker", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.stopping.set()
        self.doorbell.set()
