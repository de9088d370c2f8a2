"""Many rows through one statement at the driver's speed.

SQLAlchemy prepares every row's parameters in Python (bind names, type
processors) before the driver sees them: at month-end, with ten rows written
per time entry, that costs more than the database's own work. A ``Bulk``
statement is compiled once per dialect, and each row becomes the driver's
tuple (or mapping) directly; values given once for all rows (a batch's
timestamp) are converted once. The SQL is still SQLAlchemy's own."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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
            names = tuple(compiled.positiontup or ()) if compiled.positional \
                else tuple(compiled.binds)
            processors = {}
            fixed = {}
            for name in names:
                bind = compiled.binds[name]
                process = bind.type.dialect_impl(dialect).bind_processor(dialect)
                if process is not None:
                    processors[name] = process
                if not bind.required:
                    fixed[name] = process(bind.value) if process else bind.value
            prepared = _Prepared(compiled.string, names, compiled.positional, processors,
                                 fixed)
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
