"""The event feed: every event of a tenant in commit order, read from a cursor that never skips
an event committed late by a slower concurrent transaction.

Why ids alone are not a cursor. On PostgreSQL an event's id comes from a sequence when it is
inserted, not when it commits: transaction A inserts id 7, transaction B inserts id 8 and
commits first; a reader then sees 8, hands out "after 8", and never sees 7 once A commits. This
is how directory-sync feeds lose events (WorkOS's lost ``user.deleted``).

The position. Each event row holds ``xid``, its writing transaction's id (the column's server
default, migration 0004), and the feed is ordered by (``xid``, ``id``). A read serves only rows
with ``xid < horizon``, where the horizon is ``pg_snapshot_xmin(pg_current_snapshot())``: the
oldest transaction id still running when the reading statement took its snapshot.

Why no event can later appear before a cursor already handed out. A cursor (x, i) is either
the start (0, 0) or the position of a row the feed served, so x < h for the horizon h of that
read. Suppose an event E with (xE, iE) < (x, i) becomes visible later. Then xE <= x < h.
Transaction ids are handed out in increasing order and h is at most the next one to be handed
out, so every transaction with an id below h had already committed or aborted when that read's
snapshot was taken: E's transaction was over. Aborted, it never becomes visible; committed,
its rows were visible to that very snapshot, and it can insert nothing more. So E was in the
set the read chose from -- every visible row of the tenant after the previous cursor with
xid < h -- and that read served a prefix of this set in (xid, id) order ending at (x, i), which
includes E: E was served before the cursor, not skipped. Rows above the horizon are simply not
served yet; a later read, with a later horizon, serves them in order.

The price: a transaction left open anywhere in the PostgreSQL cluster (xids are cluster-wide,
and only transactions that wrote hold the horizon back) delays the feed until it ends; it never
loses an event. Old rows have ``xid`` 0 and come first.

SQLite has one writer at a time: a transaction holds the write lock from its first write to its
commit (writing requests take it at ``BEGIN IMMEDIATE``), so a row inserted later belongs to a
transaction that commits later, and id order is commit order. There ``xid`` is 0 and the
horizon is beyond every id, so the same query is simply ordered by id.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import BigInteger, select, tuple_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import FunctionElement

from ..errors import InvalidValue
from ..models import Event
from ..parameters import LARGEST, integer
from ..scim.formats import iso

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

#: The largest BIGINT: beyond every transaction id, and the horizon where there is none.
_BEYOND = 2**63 - 1
#: A cursor's content: "<xid>.<id>", both plain decimals.
_POSITION = re.compile(r"(0|[1-9][0-9]{0,18})\.(0|[1-9][0-9]{0,9})")
_START = (0, 0)


class _CommitHorizon(FunctionElement[int]):
    """The oldest transaction id still running when the statement's snapshot was taken."""

    type = BigInteger()
    inherit_cache = True


@compiles(_CommitHorizon)
def _no_horizon(element: _CommitHorizon, compiler: SQLCompiler, **kw: Any) -> str:
    return str(_BEYOND)  # SQLite: every committed row is in commit order already


@compiles(_CommitHorizon, "postgresql")
def _snapshot_xmin(element: _CommitHorizon, compiler: SQLCompiler, **kw: Any) -> str:
    return "(pg_snapshot_xmin(pg_current_snapshot())::text::bigint)"


def read_feed(db: Session, tenant_id: int, params: Mapping[str, Any]) -> dict[str, Any]:
    """Events of the tenant after the cursor ``after`` (from the oldest kept without it), at
    most ``limit``, and the cursor to read on from: the same one when nothing is new."""
    position = _position(params.get("after"))
    limit = integer("limit", params.get("limit"), DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
    rows = list(db.scalars(
        select(Event)
        .where(
            Event.tenant_id == tenant_id,
            Event.xid < _CommitHorizon(),
            tuple_(Event.xid, Event.id) > tuple_(*position),
        )
        .order_by(Event.xid, Event.id)
        .limit(limit)
    ))
    if rows:
        position = (rows[-1].xid, rows[-1].id)
    return {"events": [_event_json(row) for row in rows], "next_cursor": _cursor(position)}


def _cursor(position: tuple[int, int]) -> str:
    """Opaque to consumers: they only send it back."""
    text = f"{position[0]}.{position[1]}"
    return base64.urlsafe_b64encode(text.encode("ascii")).decode("ascii").rstrip("=")


def _position(raw: Any) -> tuple[int, int]:
    if raw is None or raw == "":
        return _START
    problem = InvalidValue("'after' must be a cursor returned by this feed (its next_cursor)")
    text = str(raw)
    if len(text) > 64 or not text.isascii():
        raise problem
    try:
        decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raise problem from None
    found = _POSITION.fullmatch(decoded)
    if found is None or _cursor((int(found[1]), int(found[2]))) != text:
        raise problem
    xid, event_id = int(found[1]), int(found[2])
    if xid >= _BEYOND or event_id > LARGEST:
        raise problem
    return xid, event_id


def _event_json(event: Event) -> dict[str, Any]:
    group = None if event.group_id is None else {"id": event.group_id, "name": event.group_name}
    return {
        "id": event.id,
        "type": event.type,
        "occurred_at": iso(event.occurred_at),
        "user_id": event.user_id,
        "group": group,
        "actor": event.actor,
        "detail": event.detail,
        "session_ids": list(event.session_ids or []),
        "txn": event.txn,
    }
