"""PreparedInsert (the create path's INSERTs on the driver's cursor) stores what Core would
store and fails as Core would fail."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError

from scim_bridge.db import UTCDateTime
from scim_bridge.prepared import PreparedInsert

_METADATA = MetaData()
_THINGS = Table(
    "things", _METADATA,
    Column("id", Integer, primary_key=True),
    Column("name", String(32), unique=True),
    Column("made", UTCDateTime),
    Column("tags", JSON),
    Column("note", String(32), default="unset"),
)
_MADE = dt.datetime(2026, 1, 2, 3, 4, 5, 600, tzinfo=dt.UTC)


@pytest.fixture
def connection() -> Iterator[Connection]:
    engine = create_engine("sqlite://")
    _METADATA.create_all(engine)
    with engine.begin() as connection:
        yield connection
    engine.dispose()


def _row(name: str, **extra: object) -> dict[str, object]:
    return {"name": name, "made": _MADE, "tags": ["a", 1], "note": "n", **extra}


def test_values_go_through_their_column_types_as_core_would(connection):
    PreparedInsert(insert(_THINGS)).run(connection, [_row("prepared"), _row("second")])
    connection.execute(insert(_THINGS), _row("core"))
    stored = connection.execute(select(_THINGS.c.name, _THINGS.c.made, _THINGS.c.tags,
                                       _THINGS.c.note).order_by(_THINGS.c.id)).all()
    assert [tuple(row) for row in stored] == [
        (name, _MADE, ["a", 1], "n") for name in ("prepared", "second", "core")]


def test_a_unique_clash_is_the_integrity_error_core_raises(connection):
    prepared = PreparedInsert(insert(_THINGS))
    prepared.run(connection, [_row("twice")])
    with pytest.raises(IntegrityError) as raised:
        prepared.run(connection, [_row("twice")])
    assert "things.name" in str(raised.value.orig)


def test_a_column_default_left_out_is_still_applied(connection):
    row = _row("defaulted")
    del row["note"]
    PreparedInsert(insert(_THINGS)).run(connection, [row])
    assert connection.scalar(select(_THINGS.c.note)) == "unset"

