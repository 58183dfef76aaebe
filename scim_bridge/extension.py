"""The one extension object an app holds: settings, database, signing keys, request log."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from .db import make_engine, make_sessionmaker
from .requestlog import RequestLog
from .revocation.keys import KeyRing
from .settings import Settings


@dataclass
class Bridge:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    keys: KeyRing
    request_log: RequestLog

    @classmethod
    def build(cls, settings: Settings) -> Bridge:
        engine = make_engine(settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
        sessions = make_sessionmaker(engine)
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            keys=KeyRing(sessions, settings),
            request_log=RequestLog(sessions, settings.request_log_retention),
        )
