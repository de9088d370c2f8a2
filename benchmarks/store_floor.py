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
bound on the store's share of an entry, not an estimate of it.

SQLite takes one writer at a time, so 1 / (floor per entry) bounds any
number of processes on one SQLite file: no amount of work on the hub's
Python can make the burst faster than that.

    .venv/bin/python benchmarks/store_floor.py --entries 20000 --runs 3

Prints one JSON line: the burst's own figures, rows per entry by table, and
for each run the CPU and wall time per entry of the inserts alone (with the
schema's secondary indexes, and without them)."""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import inspect

from billbridge.bench import burst
from billbridge.bench.machine import reference_ms
from billbridge.store.db import BATCH_CHECKPOINT_PAGES, make_engine, migrate

SKIPPED = ("alembic_version",)


def _connect(path: Path) -> sqlite3.Connection:
    """The pragmas make_engine sets for a worker."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA cache_size=-65536")
    conn.execute(f"PRAGMA wal_autocheckpoint={BATCH_CHECKPOINT_PAGES}")
    return conn


def _fresh_store(path: Path, indexes: bool) -> None:
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    if not indexes:
        with engine.begin() as conn:
            for table in inspect(conn).get_table_names():
                for index in inspect(conn).get_indexes(table):
                    conn.exec_driver_sql(f'DROP INDEX "{index["name"]}"')
    engine.dispose()


def _rows(store: Path) -> dict[str, tuple[list[str], list[tuple[Any, ...]]]]:
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


def _batches(rows: list[tuple[Any, ...]], parts: int) -> Iterator[list[tuple[Any, ...]]]:
    size = -(-len(rows) // parts)
    for start in range(0, size * parts, size):
        yield rows[start:start + size]


def _replay(tables: dict[str, tuple[list[str], list[tuple[Any, ...]]]], entries: int,
            batch: int, indexes: bool, workdir: Path) -> dict[str, float]:
    """Insert every table's rows again, ``batch`` entries' worth per
    transaction (each table's rows split in as many even parts)."""
    path = workdir / f"floor-{'idx' if indexes else 'bare'}-{time.monotonic_ns()}.db"
    _fresh_store(path, indexes)
    conn = _connect(path)
    parts = max(1, entries // batch)
    statements = []
    for table, (columns, rows) in tables.items():
        conn.execute(f'DELETE FROM "{table}"')  # what the migration seeded
        marks = ", ".join("?" for _ in columns)
        names = ", ".join(f'"{c}"' for c in columns)
        statements.append((f'INSERT INTO "{table}" ({names}) VALUES ({marks})',
                           list(_batches(rows, parts))))
    cpu, wall = time.process_time(), time.perf_counter()
    for part in range(parts):
        conn.execute("BEGIN IMMEDIATE")
        for sql, chunks in statements:
            if part < len(chunks) and chunks[part]:
                conn.executemany(sql, chunks[part])
        conn.execute("COMMIT")
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    conn.close()
    return {"cpu_us_per_entry": round(cpu / entries * 1e6, 1),
            "wall_us_per_entry": round(wall / entries * 1e6, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=200,
                        help="entries whose rows go in one transaction (the worker's batch)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bb-floor-") as scratch:
        workdir = Path(scratch)
        kept = workdir / "burst"
        kept.mkdir()
        reference = reference_ms()
        figures = burst.run(args.entries, keep=kept)
        tables = _rows(kept / "hub.db")
        per_entry = {t: round(len(rows) / args.entries, 3) for t, (_, rows) in tables.items()}
        runs = {"indexed": [], "bare": []}
        for _ in range(args.runs):
            for indexes, label in ((True, "indexed"), (False, "bare")):
                runs[label].append(_replay(tables, args.entries, args.batch, indexes, workdir))
    floor = statistics.median(r["cpu_us_per_entry"] for r in runs["indexed"])
    print(json.dumps({
        "entries": args.entries, "batch": args.batch,
        "burst": {k: figures[k] for k in ("entries_per_s", "duplicates", "lost",
                                          "cpu_us_per_entry")},
        "machine_reference_ms": reference,
        "rows_per_entry": per_entry,
        "rows_per_entry_total": round(sum(per_entry.values()), 2),
        "runs": runs,
        "floor_cpu_us_per_entry": floor,
        "ceiling_entries_per_s": round(1e6 / floor, 1),
    }))


if __name__ == "__main__":
    main()
