"""The one extension object an app holds: settings, database, signing keys, request log."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from .db import make_engine, make_sessionmaker
from .events.outbox import ring_on_commit
from .events.ssf import PollBell
from .requestlog import RequestLog
from .revocation.keys import KeyRing
from .settings import Settings

if TYPE_CHECKING:
    from .events.worker import DeliveryWorker


@dataclass
class Bridge:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    keys: KeyRing
    request_log: RequestLog
    #: Rung by every commit that added deliveries: the local delivery worker wakes at once.
    doorbell: threading.Event = field(default_factory=threading.Event)
    #: Rung by the same commits for the SSF long polls waiting in this process.
    poll_bell: PollBell | None = None
    _secrets: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, settings: Settings) -> Bridge:
        engine = make_engine(settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
        sessions = make_sessionmaker(engine)
        bridge = cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            keys=KeyRing(sessions, settings),
            request_log=RequestLog(sessions, settings.request_log_retention),
        )
        ring_on_commit(sessions, bridge.doorbell)
        bridge.poll_bell = PollBell(sessions)
        return bridge

    def close(self) -> None:
        """End this app's background work and release its connections: the request log is
        written and its writer stopped, the pool emptied. For an app that is done (tests,
        tools); a server process simply exits."""
        self.request_log.close()
        self.engine.dispose()

    def deployment_secret(self, name: str) -> str:
        """A secret every instance shares (services/keys.py), read once per process in its own
        committed transaction, so no request's rollback can leave two workers with two keys."""
        if name not in self._secrets:
            from .db import begin_write
            from .services.keys import deployment_secret

            with self.sessions() as db:
                begin_write(db)
                value = deployment_secret(db, name)
                db.commit()
            self._secrets[name] = value
        return self._secrets[name]

    def delivery_worker(self) -> DeliveryWorker:
        """A delivery worker on this app's database, woken by this app's commits."""
        from .events.worker import DeliveryWorker

        return DeliveryWorker(self.sessions, self.settings, self.doorbell, signer=self.keys)
