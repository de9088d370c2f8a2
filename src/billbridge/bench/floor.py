"""The store's floor under the month-end burst on SQLite: what writing the
burst's rows costs SQLite alone, with no hub code around it.

A burst of N entries runs as `billbridge bench burst` runs it, and its store
is kept. Then every row that the burst left in the store is inserted again
into a freshly migrated store (same schema, same indexes, same pragmas), in
transactions of ``--batch`` entries' rows each, with the driver's
``executemany`` and nothing else: no validation, no pricing, no JSON, no
SQLAlchemy, no HTTP. Every one of those rows had to be written at least once
by the hub, and most were updated again afterwards (an inbox row is finished,
an outbox row and its delivery attempt are settled), so this is a lower
bound on the store's share of an entry, not an estimate of it. Three kinds
of replay, each ``--runs`` times into a fresh store:

- ``inserts``: each part's rows in one transaction, as they were left;
- ``inserts_bare``: the same without the schema's secondary indexes (its
  primary keys and unique constraints stay), which says what they cost;
- ``lifecycle``: the least the design asks of a batch (STAGES): the inbox
  rows arrive pending and are finished by the worker, the outbox rows are
  written pending and settled done, the delivery attempts are written sent
  and settled, each stage a transaction of its own.

SQLite takes one writer at a time, so 1 / (floor per entry) bounds any
number of processes on one SQLite file: no amount of work on the hub's
Python can make the burst faster than that.

    billbridge bench floor --entries 20000 --runs 3 --json

Prints one JSON line: the burst's own figures, rows per entry by table, and
for each run the CPU and wall time per entry of the writes alone (with the
schema's secondary indexes, without them, and through the lifecycle), the
medians and the ceiling each gives."""

from __future__ import annotations

import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, inspect

from billbridge.bench import burst
from billbridge.store.db import make_engine, migrate

SKIPPED = ("alembic_version",)
KINDS = {"inserts": (True, False), "inserts_bare": (False, False), "lifecycle": (True, True)}
"""Each kind of replay: with the schema's secondary indexes, through the lifecycle."""
Rows = list[tuple[Any, ...]]
Tables = dict[str, tuple[list[str], Rows]]
Statements = tuple[str, list[Rows], str | None, list[Rows]]
"""A table's insert and its rows in parts; its settling update and the parts'
final values (None and [] for a table whose rows are written once)."""


def _fresh_store(path: Path, indexes: bool) -> tuple[Engine, sqlite3.Connection]:
    """A migrated, empty store, and the driver's own connection to it with
    the pragmas ``make_engine`` gives every connection of a worker."""
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    with engine.begin() as conn:
        tables = [t for t in inspect(conn).get_table_names() if t not in SKIPPED]
        for table in tables:
            conn.exec_driver_sql(f'DELETE FROM "{table}"')  # what the migration seeded
            if not indexes:
                for index in inspect(conn).get_indexes(table):
                    conn.exec_driver_sql(f'DROP INDEX "{index["name"]}"')
    driver = engine.raw_connection().driver_connection
    assert isinstance(driver, sqlite3.Connection)
    return engine, driver


def read_store(store: Path) -> Tables:
    """Every table's columns and rows, as the burst left them."""
    conn = sqlite3.connect(store)
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    found = {}
    for table in tables:
        if table in SKIPPED:
            continue
        cursor = conn.execute(f'SELECT * FROM "{table}"')
        columns = [d[0] for d in cursor.description]
        rows = cursor.fetchall()
        if rows:
            found[table] = (columns, rows)
    conn.close()
    return found


def _batches(rows: Rows, parts: int) -> Iterator[Rows]:
    """Exactly ``parts`` even slices (the last ones empty when rows are few)."""
    size = -(-len(rows) // parts)
    for start in range(0, size * parts, size):
        yield rows[start:start + size]


SETTLED = {
    "inbox": ("status", "processed_at", "attempts", "config_version"),
    "outbox": ("status", "external_id", "done_at", "attempts"),
    "delivery_attempts": ("outcome", "detail"),
}
"""Columns a row is written with at first and settled later: an inbox row
arrives pending and is finished by the worker, an outbox row is written
pending and settled done, a delivery attempt is written sent and settled."""
FIRST = {"status": "pending", "outcome": "sent", "attempts": 0}
STAGES = (
    ("intake", ("inbox",), ()),
    ("worker", None, ("inbox",)),  # None: every table no other stage names
    ("send", ("delivery_attempts",), ()),
    ("settle", ("xref",), ("outbox", "delivery_attempts")),
)
"""The design's least lifecycle of a batch, one transaction per stage: the
intake stores the events; the worker finishes them and writes records,
facts and commands; the dispatcher records its attempt, then settles it."""


def _statements(tables: Tables, parts: int, lifecycle: bool) -> dict[str, Statements]:
    """Per table: its insert and rows in ``parts`` even parts; with
    ``lifecycle`` also its settling update and the parts' final values."""
    found: dict[str, Statements] = {}
    for table, (columns, rows) in tables.items():
        marks = ", ".join("?" for _ in columns)
        names = ", ".join(f'"{c}"' for c in columns)
        insert = f'INSERT INTO "{table}" ({names}) VALUES ({marks})'
        settled = SETTLED.get(table, ()) if lifecycle else ()
        if not settled:
            found[table] = (insert, list(_batches(rows, parts)), None, [])
            continue
        at = [columns.index(c) for c in settled]
        key = columns.index("id")
        first = [tuple(FIRST.get(c) if i in at else v for i, (c, v) in
                       enumerate(zip(columns, row, strict=True))) for row in rows]
        final = [(*(row[i] for i in at), row[key]) for row in rows]
        update = (f'UPDATE "{table}" SET {", ".join(f"{c} = ?" for c in settled)} '
                  'WHERE id = ?')
        found[table] = (insert, list(_batches(first, parts)), update,
                        list(_batches(final, parts)))
    return found


def replay(tables: Tables, entries: int, batch: int, path: Path, *, indexes: bool = True,
           lifecycle: bool = False) -> dict[str, float]:
    """Write every table's rows again, ``batch`` entries' worth at a time
    (each table's rows split in as many even parts): all of a part's inserts
    in one transaction, or (``lifecycle``) each stage of STAGES in its own,
    rows written in their first state and settled later."""
    engine, conn = _fresh_store(path, indexes)
    parts = max(1, entries // batch)
    statements = _statements(tables, parts, lifecycle)
    stages: list[tuple[tuple[str, ...], tuple[str, ...]]] = [(tuple(statements), ())]
    if lifecycle:
        named = {t for _, inserts, _ in STAGES if inserts for t in inserts}
        rest = tuple(t for t in statements if t not in named)
        stages = [(rest if inserts is None else inserts, updates)
                  for _, inserts, updates in STAGES]
    cpu, wall = time.process_time(), time.perf_counter()
    for part in range(parts):
        for inserts, updates in stages:
            conn.execute("BEGIN IMMEDIATE")
            for table in updates:
                _, _, sql, settled = statements.get(table, ("", [], None, []))
                if sql is not None:
                    conn.executemany(sql, settled[part])
            for table in inserts:
                if table in statements:
                    sql, chunks, _, _ = statements[table]
                    conn.executemany(sql, chunks[part])
            conn.execute("COMMIT")
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    conn.close()
    engine.dispose()
    return {"cpu_us_per_entry": round(cpu / entries * 1e6, 1),
            "wall_us_per_entry": round(wall / entries * 1e6, 1)}


def run(entries: int, *, runs: int = 3, batch: int = 200) -> dict[str, Any]:
    """One burst of ``entries``, then each kind of replay ``runs`` times."""
    with tempfile.TemporaryDirectory(prefix="bb-floor-") as scratch:
        workdir = Path(scratch)
        kept = workdir / "burst"
        kept.mkdir()
        figures = burst.run(entries, keep=kept)
        tables = read_store(kept / "hub.db")
        per_entry = {t: round(len(rows) / entries, 3) for t, (_, rows) in tables.items()}
        found: dict[str, list[dict[str, float]]] = {kind: [] for kind in KINDS}
        for run_no in range(runs):
            for kind, (indexes, lifecycle) in KINDS.items():
                found[kind].append(replay(tables, entries, batch,
                                          workdir / f"{kind}-{run_no}.db",
                                          indexes=indexes, lifecycle=lifecycle))
    medians = {kind: statistics.median(r["cpu_us_per_entry"] for r in done)
               for kind, done in found.items()}
    return {
        "entries": entries, "batch": batch,
        "burst": {k: figures[k] for k in ("entries_per_s", "duplicates", "lost",
                                          "cpu_us_per_entry")},
        "rows_per_entry": per_entry,
        "rows_per_entry_total": round(sum(per_entry.values()), 2),
        "runs": found,
        "median_cpu_us_per_entry": medians,
        "ceiling_entries_per_s": {kind: round(1e6 / us, 1) for kind, us in medians.items()},
    }


def lifecycle(store: Path, entries: int, *, runs: int = 1, batch: int = 200) -> dict[str, Any]:
    """The lifecycle floor of the rows a burst left in ``store``: its median
    CPU per entry over ``runs`` replays and the ceiling that gives."""
    tables = read_store(store)
    with tempfile.TemporaryDirectory(prefix="bb-floor-") as scratch:
        done = [replay(tables, entries, batch, Path(scratch) / f"lifecycle-{n}.db",
                       lifecycle=True)["cpu_us_per_entry"] for n in range(runs)]
    us = statistics.median(done)
    return {"lifecycle_cpu_us_per_entry": us, "runs": done, "batch": batch,
            "rows_per_entry": round(sum(len(rows) for _, rows in tables.values()) / entries, 2),
            "ceiling_entries_per_s": round(1e6 / us, 1)}


def against(figures: Mapping[str, Any], floor: Mapping[str, Any]) -> dict[str, Any]:
    """A burst's figures as ratios to the store's floor measured in the same
    sitting: its share of the floor's ceiling, and the hub's CPU per entry
    (the workers' and the intake's, as the burst reads them) against the
    floor's per entry."""
    us = floor["lifecycle_cpu_us_per_entry"]
    parts = figures["cpu_us_per_entry"]
    hub = {role: parts.get(role) for role in ("workers", "intake")}
    total = None if None in hub.values() else round(sum(v for v in hub.values() if v), 1)
    return {
        "floor": dict(floor),
        "share_of_floor_ceiling": round(figures["entries_per_s"]
                                        / floor["ceiling_entries_per_s"], 3),
        "hub_cpu_us_per_entry": {**hub, "total": total},
        "hub_cpu_to_floor": None if total is None else round(total / us, 2),
        "hub_cpu_to_floor_by_role": {role: None if v is None else round(v / us, 2)
                                     for role, v in hub.items()},
    }


def burst_with_floor(entries: int, *, runs: int = 1, **options: Any) -> dict[str, Any]:
    """``burst.run`` on SQLite, then the lifecycle floor of the very rows it
    wrote, measured straight after it; the burst's figures with their ratios."""
    with tempfile.TemporaryDirectory(prefix="bb-burst-floor-") as scratch:
        kept = Path(scratch)
        figures = burst.run(entries, keep=kept, **options)
        floor = lifecycle(kept / "hub.db", entries, runs=runs)
    return figures | against(figures, floor)
