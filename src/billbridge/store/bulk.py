"""Many rows through one statement at the driver's speed.

SQLAlchemy prepares every row's parameters in Python (bind names, type
processors) before the driver sees them: at month-end, with ten rows written
per time entry, that costs more than the database's own work. A ``Bulk``
statement is compiled once per dialect, and each row becomes the driver's
tuple (or mapping) directly; values given once for all rows (a batch's
timestamp) are converted once. The SQL is still SQLAlchemy's own.

On PostgreSQL the rows go as one set-based statement instead: the varying
columns of every row are sent as one JSON document (orjson, in C) and the
statement reads them back as rows with ``json_to_recordset``
(``INSERT … SELECT … FROM json_to_recordset(…)``, ``UPDATE … FROM …``). The
server then runs one statement, not one per row; per row that costs a fifth
of ``executemany`` and an eighth of sending each column as an array, whose
text form psycopg builds in Python (see docs/benchmarks.md). Rows must not
repeat a key that an ``ON CONFLICT DO UPDATE`` or the UPDATE's WHERE
matches: one statement can change a row only once (the units of work hold
one row per key).

An insert that must say which rows went in (``fetch``, with RETURNING) runs
set-based on PostgreSQL, and on SQLite, whose ``executemany`` returns no rows,
as one multi-row ``VALUES`` list per 500 rows."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

Build = Callable[[Connection], ClauseElement]


@dataclass(frozen=True, slots=True)
class _Prepared:
    sql: str
    names: tuple[str, ...]  # bind names in the driver's order
    positional: bool
    processors: Mapping[str, Callable[[Any], Any]]
    fixed: Mapping[str, Any]  # values the statement itself carries, converted
    types: Mapping[str, str]  # each bind's SQL type, as this dialect spells it
    set_based: dict[frozenset[str], str] = field(default_factory=dict)
    """PostgreSQL: the unnest form of the statement, per set of shared names."""


class Bulk:
    """A statement run for many rows straight through the driver: ``run`` with
    ``executemany`` (set-based on PostgreSQL), ``fetch`` as one INSERT … RETURNING."""

    def __init__(self, build: Build, returning: Sequence[Any] = ()) -> None:
        self._build = build
        self._returning = tuple(returning)  # what ``fetch`` returns (``run`` returns none)
        self._prepared: dict[tuple[str, bool], _Prepared] = {}

    def _prepare(self, conn: Connection, returning: bool = False) -> _Prepared:
        dialect: Dialect = conn.dialect
        prepared = self._prepared.get((dialect.name, returning))
        if prepared is None:
            statement: Any = self._build(conn)
            if returning:
                statement = statement.returning(*self._returning)
            compiled = statement.compile(dialect=dialect)
            assert isinstance(compiled, SQLCompiler)
            if "POSTCOMPILE" in compiled.string:
                # An expanding IN list is rendered only at execution, per call.
                raise TypeError("a Bulk statement cannot hold an IN (…) list; "
                                "spell the alternatives out with or_()")
            names = tuple(compiled.positiontup or ()) if compiled.positional \
                else tuple(compiled.binds)
            processors = {}
            fixed = {}
            types = {}
            for name in names:
                bind = compiled.binds[name]
                types[name] = bind.type.dialect_impl(dialect).compile(dialect=dialect)
                process = bind.type.dialect_impl(dialect).bind_processor(dialect)
                if process is not None:
                    processors[name] = process
                if not bind.required:
                    fixed[name] = process(bind.value) if process else bind.value
            prepared = _Prepared(compiled.string, names, compiled.positional, processors,
                                 fixed, types)
            self._prepared[(dialect.name, returning)] = prepared
        return prepared

    def run(self, conn: Connection, rows: Sequence[Mapping[str, Any]],
            **shared: Any) -> int:
        """Execute for every row (``shared`` values apply to all of them); the
        number of rows the database changed."""
        if not rows:
            return 0
        prepared = self._prepare(conn)
        constants = self._constants(prepared, shared)
        if conn.dialect.name == "postgresql" and not prepared.positional and len(rows) > 1:
            return int(_set_based(conn, prepared, rows, constants).rowcount)
        params: list[Any] = [
            tuple(values) if prepared.positional
            else dict(zip(prepared.names, values, strict=True))
            for values in _values(prepared, rows, constants)]
        return int(conn.exec_driver_sql(prepared.sql, params).rowcount)

    def fetch(self, conn: Connection, rows: Sequence[Mapping[str, Any]],
              **shared: Any) -> list[Any]:
        """Run an INSERT for every row with RETURNING the columns given to the
        constructor, and return the rows it returned (with ``ON CONFLICT DO
        NOTHING``, those it inserted).

        ``executemany`` returns no rows, so on PostgreSQL the statement runs
        set-based and elsewhere (SQLite) as one multi-row ``VALUES`` list per
        chunk of rows: one statement either way, not one per row."""
        if not self._returning:
            raise TypeError("Bulk.fetch needs the columns to return (Bulk(…, returning=…))")
        if not rows:
            return []
        prepared = self._prepare(conn, returning=True)
        constants = self._constants(prepared, shared)
        if conn.dialect.name == "postgresql":
            return list(_set_based(conn, prepared, rows, constants))
        if not prepared.positional or not prepared.sql.startswith("INSERT "):
            raise TypeError("Bulk.fetch runs a positional INSERT … VALUES here")
        head, group, tail = _values_group(prepared.sql)
        width = len(prepared.names)
        per_statement = max(1, min(_MAX_ROWS, _MAX_BINDS // width))
        values = [v for row in _values(prepared, rows, constants) for v in row]
        found: list[Any] = []
        for start in range(0, len(rows), per_statement):
            count = min(per_statement, len(rows) - start)
            sql = f"{head}{', '.join([group] * count)}{tail}"
            found += conn.exec_driver_sql(
                sql, tuple(values[start * width:(start + count) * width])).all()
        return found

    @staticmethod
    def _constants(prepared: _Prepared, shared: Mapping[str, Any]) -> dict[str, Any]:
        processors = prepared.processors
        return {**prepared.fixed,
                **{k: processors[k](v) if k in processors else v for k, v in shared.items()}}


def _values(prepared: _Prepared, rows: Sequence[Mapping[str, Any]],
            constants: Mapping[str, Any]) -> list[list[Any]]:
    """Each row's bind values in the driver's order, converted."""
    processors = prepared.processors
    # Per name: (is it the same for every row, that value or the name, converter).
    plan = [(True, constants[n], None) if n in constants else (False, n, processors.get(n))
            for n in prepared.names]
    return [[given if same else (row[given] if convert is None or row[given] is None
                                 else convert(row[given]))
             for same, given, convert in plan] for row in rows]


_MAX_ROWS = 500  # rows per multi-row VALUES statement
_MAX_BINDS = 32_766  # SQLite's default limit on bind parameters in one statement


def _values_group(sql: str) -> tuple[str, str, str]:
    """An INSERT split around its one VALUES row: (up to VALUES, the row, the rest)."""
    found = _VALUES.search(sql)
    if found is None:
        raise ValueError(f"no VALUES list in {sql!r}")
    end = _closing(sql, found.end())
    return sql[:found.start()] + " VALUES ", sql[found.end() - 1:end + 1], sql[end + 1:]


def _set_based(conn: Connection, prepared: _Prepared, rows: Sequence[Mapping[str, Any]],
               constants: Mapping[str, Any]) -> Any:
    varying = [n for n in prepared.names if n not in constants]
    key = frozenset(constants)
    sql = prepared.set_based.get(key)
    if sql is None:
        sql = prepared.set_based[key] = _set_form(prepared, varying)
    converters = [(f"c{i}", name, prepared.processors.get(name))
                  for i, name in enumerate(varying)]
    document = [{alias: (row[name] if convert is None or row[name] is None
                         else convert(row[name]))
                 for alias, name, convert in converters} for row in rows]
    params: dict[str, Any] = dict(constants)
    params[_ROWS] = orjson.dumps(document, default=str).decode()
    return conn.exec_driver_sql(sql, params)


_ROWS = "bulk_rows"
_VALUES = re.compile(r" VALUES \(")
_PLACEHOLDER = re.compile(r"%\([^)]*\)s")


def _set_form(prepared: _Prepared, varying: Sequence[str]) -> str:
    """The statement with every varying bind read from ``json_to_recordset``.

    ``%(name)s::TYPE`` becomes ``v.cN``, a column of type TYPE; binds given
    once for all rows stay as they are."""
    sql = prepared.sql
    columns = []
    for i, name in enumerate(varying):
        placeholder = f"%({name})s"
        cast = f"{placeholder}::{prepared.types[name]}"
        if placeholder not in sql:
            raise ValueError(f"bind {name!r} not found in {prepared.sql!r}")
        sql = sql.replace(cast, f"v.c{i}").replace(placeholder, f"v.c{i}")
        columns.append(f"c{i} {prepared.types[name]}")
    source = f"json_to_recordset(%({_ROWS})s::json) AS v({', '.join(columns)})"
    if sql.startswith("INSERT "):
        head, group, tail = _values_group(sql)
        return f"{head.removesuffix('VALUES ')}SELECT {group[1:-1]} FROM {source}{tail}"
    if sql.startswith("UPDATE ") and " WHERE " in sql:
        before, _, after = sql.partition(" WHERE ")
        return f"{before} FROM {source} WHERE {after}"
    raise ValueError(f"only INSERT … VALUES and UPDATE … WHERE run set-based: {prepared.sql!r}")


def _closing(sql: str, start: int) -> int:
    """Index of the parenthesis closing the one opened just before ``start``
    (placeholders such as ``%(name)s`` hold parentheses of their own)."""
    depth = 1
    i = start
    while i < len(sql):
        placeholder = _PLACEHOLDER.match(sql, i)
        if placeholder is not None:
            i = placeholder.end()
            continue
        if sql[i] == "(":
            depth += 1
        elif sql[i] == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError(f"unbalanced VALUES list in {sql!r}")
