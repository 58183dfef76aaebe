"""A clock the test moves by hand, for ``Settings(clock=...)``: expiry without sleeping."""

from __future__ import annotations

import datetime as dt


class Clock:
    def __init__(self, start: dt.datetime | None = None) -> None:
        self.now = start or dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)

    def timestamp(self) -> int:
        return int(self.now.timestamp())
