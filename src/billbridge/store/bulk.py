"""Many rows through one statement at the driver's speed.

SQLAlchemy prepares every row's parameters in Python (bind names, type
processors) before the driver sees them: at month-end, with ten rows written
per time entry, that costs more than the database's own work. A ``Bulk``
statement is compiled once per dialect, and each row becomes the driver's
tuple (or mapping) directly; values given once for all rows (a batch's
timestamp) are converted once. The SQL is still SQLAlchemy's own.

On PostgreSQL the rows go as one set-based statement instead: each varying
column is sent as one array, and the statement reads them back as rows with
``unnest`` (``INSERT … SELECT … FROM unnest(…)``, ``UPDATE … FROM unnest(…)``).
The server then runs one statement, not one per row, which more than halves
its work per row (see docs/benchmarks.md). Rows must not repeat a key that an
``ON CONFLICT DO UPDATE`` or the UPDATE's WHERE matches: one statement can
change a row only once (the units of work hold one row per key)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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
    """A statement run with ``executemany`` straight through the driver."""

    def __init__(self, build: Build) -> None:
        self._build = build
        self._prepared: dict[str, _Prepared] = {}

    def _prepare(self, conn: Connection) -> _Prepared:
        dialect: Dialect = conn.dialect
        prepared = self._prepared.get(dialect.name)
        if prepared is None:
            compiled = self._build(conn).compile(dialect=dialect)
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
            self._prepared[dialect.name] = prepared
        return prepared

    def run(self, conn: Connection, rows: Sequence[Mapping[str, Any]],
            **shared: Any) -> int:
        """Execute for every row (``shared`` values apply to all of them); the
        number of rows the database changed."""
        if not rows:
            return 0
        prepared = self._prepare(conn)
        processors = prepared.processors
        constants = {**prepared.fixed,
                     **{k: processors[k](v) if k in processors else v
                        for k, v in shared.items()}}
        if conn.dialect.name == "postgresql" and not prepared.positional and len(rows) > 1:
            return _run_set_based(conn, prepared, rows, constants)
        # Per name: (is it the same for every row, that value or the name, converter).
        plan = [(True, constants[n], None) if n in constants else (False, n, processors.get(n))
                for n in prepared.names]
        params: list[Any] = []
        for row in rows:
            values = [given if same else (row[given] if convert is None or row[given] is None
                                          else convert(row[given]))
                      for same, given, convert in plan]
            params.append(tuple(values) if prepared.positional
                          else dict(zip(prepared.names, values, strict=True)))
        return int(conn.exec_driver_sql(prepared.sql, params).rowcount)


def _run_set_based(conn: Connection, prepared: _Prepared, rows: Sequence[Mapping[str, Any]],
                   constants: Mapping[str, Any]) -> int:
    varying = [n for n in prepared.names if n not in constants]
    key = frozenset(constants)
    sql = prepared.set_based.get(key)
    if sql is None:
        sql = prepared.set_based[key] = _unnest_form(prepared, varying)
    params: dict[str, Any] = dict(constants)
    for name in varying:
        convert = prepared.processors.get(name)
        column = [row[name] for row in rows]
        if convert is not None:
            column = [None if v is None else convert(v) for v in column]
        params[name] = column
    return int(conn.exec_driver_sql(sql, params).rowcount)


_VALUES = re.compile(r" VALUES \(")
_PLACEHOLDER = re.compile(r"%\([^)]*\)s")


def _unnest_form(prepared: _Prepared, varying: Sequence[str]) -> str:
    """The statement with every varying bind read from ``unnest`` of arrays.

    ``%(name)s::TYPE`` becomes ``v.cN``, and the arrays come in as
    ``%(name)s::TYPE[]``; binds given once for all rows stay as they are."""
    sql = prepared.sql
    columns = []
    for i, name in enumerate(varying):
        sql_type = prepared.types[name]
        placeholder = f"%({name})s"
        cast = f"{placeholder}::{sql_type}"
        if cast not in sql and placeholder not in sql:
            raise ValueError(f"bind {name!r} not found in {prepared.sql!r}")
        sql = sql.replace(cast, f"v.c{i}").replace(placeholder, f"v.c{i}")
        columns.append((f"%({name})s::{sql_type}[]", f"c{i}"))
    source = (f"unnest({', '.join(array for array, _ in columns)}) "
              f"AS v({', '.join(alias for _, alias in columns)})")
    if sql.startswith("INSERT "):
        found = _VALUES.search(sql)
        if found is None:
            raise ValueError(f"no VALUES list in {prepared.sql!r}")
        end = _closing(sql, found.end())
        return f"{sql[:found.start()]} SELECT {sql[found.end():end]} FROM {source}{sql[end + 1:]}"
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
