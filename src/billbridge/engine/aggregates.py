"""The aggregate queue: which aggregates have events waiting, and who holds
the lease to process them. One holder per aggregate keeps per-aggregate order
across any number of workers; the lease expires if its holder dies."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import Connection, select, update

from billbridge.engine.wakeup import announce
from billbridge.store.db import dialect_insert
from billbridge.store.tables import aggregates

_BUMPS: dict[str, Any] = {}


def _bump_statement(conn: Connection) -> Any:
    """Built once per dialect: every ingest runs it, and building it cost more
    than running it."""
    name = conn.dialect.name
    if name not in _BUMPS:
        stmt = dialect_insert(conn)(aggregates)
        _BUMPS[name] = stmt.on_conflict_do_update(
            index_elements=[aggregates.c.key],
            set_={"pending": aggregates.c.pending + stmt.excluded.pending},
        )
    return _BUMPS[name]


def bump_pending(conn: Connection, counts: Counter[str]) -> None:
    """Record that ``counts[key]`` more events wait on each key."""
    if not counts:
        return
    # Sorted so that two transactions touching the same keys lock them in one order.
    conn.execute(_bump_statement(conn), [{"key": k, "pending": n, "lease_until_ms": 0}
                                         for k, n in sorted(counts.items())])
    announce(conn)  # workers that wait for work (engine/wakeup.py)


def claim(conn: Connection, *, owner: str, now_ms: int, lease_ms: int, limit: int) -> list[str]:
    """Lease up to ``limit`` aggregates with waiting events that nobody holds.

    On PostgreSQL, rows another worker is claiming right now are skipped rather
    than waited for (SKIP LOCKED); SQLite has one writer at a time anyway.
    """
    query = (select(aggregates.c.key)
             .where(aggregates.c.pending > 0, aggregates.c.lease_until_ms < now_ms)
             .order_by(aggregates.c.lease_until_ms, aggregates.c.key)
             .limit(limit)
             .with_for_update(skip_locked=True))
    keys = [row.key for row in conn.execute(query)]
    if keys:
        conn.execute(update(aggregates).where(aggregates.c.key.in_(keys))
                     .values(lease_owner=owner, lease_until_ms=now_ms + lease_ms))
    return keys


def fence(conn: Connection, key: str, *, owner: str, now_ms: int, lease_ms: int,
          processed: int = 0, drained: bool = False, release: bool = False) -> bool:
    """Extend our lease on ``key`` and count ``processed`` events off it, in the
    caller's transaction. False means the lease was lost (we stalled past it and
    another worker may hold it): the caller must roll back. ``drained`` says
    the caller found nothing pending, so the count is zero whatever it said;
    ``release`` gives the lease up instead of extending it (the caller is done
    with the aggregate for now: one statement, not a transaction of its own)."""
    pending = 0 if drained else aggregates.c.pending - processed
    result = conn.execute(
        update(aggregates)
        .where(aggregates.c.key == key, aggregates.c.lease_owner == owner)
        .values(lease_owner=None if release else owner,
                lease_until_ms=0 if release else now_ms + lease_ms, pending=pending))
    return result.rowcount == 1
