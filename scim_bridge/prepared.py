"""Statements compiled once per dialect and run on the driver's own cursor, for the hottest
paths, where SQLAlchemy's per-execution work costs more than SQLite takes to answer: the reads
of introspection (:class:`PreparedRead`, :func:`read_together`) and the INSERTs of POST /Users
(the user, its values, its event: :class:`PreparedInsert`).

Values go through their column types' processors, as a Core execution's would. A driver error
comes out wrapped (``IntegrityError``, ``OperationalError``, ...) as Core raises it, so the
unique constraints still answer 409, a full disk 503, and a dead connection is invalidated. An
INSERT whose columns need Python-side defaults, or rows of differing columns, runs through Core.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from sqlalchemy import Connection, Insert, Select, select, true
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError

__all__ = ["BoundRead", "PreparedInsert", "PreparedRead", "read_together"]

_Compiled = tuple[str, Callable[[Mapping[str, Any]], Any]] | None


class PreparedInsert:
    """``run(connection, rows)``: one INSERT per row, in order, on the connection's cursor."""

    def __init__(self, statement: Insert) -> None:
        self._statement = statement
        self._compiled: dict[tuple[str, tuple[str, ...]], _Compiled] = {}

    def run(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        dialect = connection.dialect
        keys = tuple(rows[0])
        cache_key = (dialect.name, keys)
        compiled = (self._compiled[cache_key] if cache_key in self._compiled
                    else self._compile(dialect, keys))
        if compiled is None or any(tuple(row) != keys for row in rows[1:]):
            connection.execute(self._statement, list(rows))
            return
        sql, bind = compiled
        parameters = [bind(row) for row in rows]
        try:
            cursor = connection.connection.cursor()
            try:
                if len(parameters) == 1:
                    cursor.execute(sql, parameters[0])
                else:
                    cursor.executemany(sql, parameters)
            finally:
                cursor.close()
        except dialect.loaded_dbapi.Error as error:
            raise DBAPIError.instance(sql, parameters, error, dialect.loaded_dbapi.Error,
                                      dialect=dialect) from error

    def _compile(self, dialect: Dialect, keys: tuple[str, ...]) -> _Compiled:
        compiled = self._statement.compile(dialect=dialect, column_keys=list(keys))
        processors = compiled._bind_processors
        if (len(self._compiled) >= 64 or compiled.insert_prefetch or compiled.returning
                or not all(callable(process) for process in processors.values())):
            result: _Compiled = None  # defaults to run, or too many shapes: Core does it
        else:
            names = compiled.positiontup

            def bind(row: Mapping[str, Any]) -> Any:
                values = compiled.construct_params(row)
                for name, process in processors.items():
                    if name in values:
                        values[name] = process(values[name])  # type: ignore[operator]
                return tuple(values[name] for name in names) if names is not None else values

            result = (compiled.string, bind)
        if len(self._compiled) < 64:
            self._compiled[(dialect.name, keys)] = result
        return result


class PreparedRead:
    """``all(connection, params)``: a SELECT's rows as named tuples, each value converted by its
    column's type as a Core result's would be. A driver error re-runs the statement through
    SQLAlchemy, which raises it wrapped (and invalidates a dead connection) as every other read
    does."""

    def __init__(self, statement: Select[*tuple[Any, ...]]) -> None:
        self._statement = statement
        self._columns = list(statement.selected_columns)
        self._row: Callable[..., Any] = namedtuple(  # type: ignore[misc]
            "Row", [str(column.key) for column in self._columns], rename=True)
        self._compiled: dict[str, tuple[str, Callable[[Mapping[str, Any]], Any], list[Any]]] = {}
        self._joined: dict[int, PreparedRead] = {}

    def all(self, connection: Connection, params: Mapping[str, Any]) -> list[Any]:
        return [self._row(*values) for values in self._values(connection, params)]

    def bound(self, **params: Any) -> BoundRead:
        """This read with its parameters, for :func:`read_together`."""
        return BoundRead(self, params)

    def _values(self, connection: Connection, params: Mapping[str, Any]) -> list[list[Any]]:
        dialect = connection.dialect
        sql, bind, processors = self._compiled.get(dialect.name) or self._compile(dialect)
        try:
            cursor = connection.connection.cursor()
            try:
                cursor.execute(sql, bind(params))
                raw = cursor.fetchall()
            finally:
                cursor.close()
        except dialect.loaded_dbapi.Error:
            return [list(row) for row in connection.execute(self._statement, dict(params))]
        return [[value if process is None else process(value)
                 for value, process in zip(row, processors, strict=True)] for row in raw]

    def _compile(
        self, dialect: Dialect
    ) -> tuple[str, Callable[[Mapping[str, Any]], Any], list[Any]]:
        compiled = self._statement.compile(dialect=dialect)
        names = compiled.positiontup
        bind: Callable[[Mapping[str, Any]], Any] = (
            (lambda params: tuple(params[name] for name in names)) if names is not None
            else dict)
        processors = [column.type.dialect_impl(dialect).result_processor(dialect, None)
                      for column in self._columns]
        self._compiled[dialect.name] = (compiled.string, bind, processors)
        return compiled.string, bind, processors

    def _joined_with(self, other: PreparedRead) -> PreparedRead:
        joined = self._joined.get(id(other))
        if joined is None:
            mine, theirs = self._statement.subquery(), other._statement.subquery()
            joined = self._joined[id(other)] = PreparedRead(
                select(mine, theirs).select_from(mine.outerjoin(theirs, true())))
        return joined


class BoundRead(NamedTuple):
    read: PreparedRead
    params: Mapping[str, Any]


def read_together(
    connection: Connection, first: BoundRead, second: BoundRead
) -> tuple[list[Any], list[Any]]:
    """The rows of two reads that do not depend on one another, in one statement (one round
    trip on PostgreSQL): ``first`` matches at most one row, and when it matches none the
    answer has no rows of ``second`` either. ``second``'s rows come in no particular order; a
    row of it whose every value is NULL is taken for none."""
    if first.params.keys() & second.params.keys():
        raise ValueError("reads sent together need parameters of distinct names")
    joined = first.read._joined_with(second.read)
    values = joined._values(connection, {**first.params, **second.params})
    width = len(first.read._columns)
    firsts = [first.read._row(*values[0][:width])] if values else []
    seconds = [second.read._row(*row[width:]) for row in values
               if any(value is not None for value in row[width:])]
    return firsts, seconds
