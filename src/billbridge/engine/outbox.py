"""The transactional outbox: commands are written in the same transaction as
the state change that caused them, keyed by the one idempotency-key function."""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, or_, select, update

from billbridge.domain.idempotency import canonical_json, key_of_json
from billbridge.engine import metrics
from billbridge.store.bulk import Bulk
from billbridge.store.db import dialect_insert
from billbridge.store.notify import announce
from billbridge.store.rows import NewCommand
from billbridge.store.tables import outbox

__all__ = ["NewCommand", "enqueue_many", "lane_of"]

REVIVABLE = ("superseded", "failed")


def lane_of(aggregate_key: str, lanes: int) -> int:
    """The dispatch lane of an aggregate's commands, of a target's ``lanes``:
    the same in every process (Python's ``hash`` is salted per process), so an
    aggregate's commands are all in one lane and go in order."""
    return zlib.crc32(aggregate_key.encode()) % lanes if lanes > 1 else 0


_COLUMNS = ("target", "kind", "idempotency_key", "aggregate_key", "payload", "correlation_id",
            "inbox_id", "record_kind", "record_id", "depends_on", "lane", "created_at")
# inline(): no RETURNING of the new ids that SQLAlchemy would add on PostgreSQL;
# ``fetch`` asks for what it returns.
_INSERT = Bulk(lambda conn: dialect_insert(conn)(outbox).inline()
               .values(status="pending", attempts=0, next_attempt_ms=0,
                       **{column: bindparam(column) for column in _COLUMNS})
               .on_conflict_do_nothing(index_elements=[outbox.c.target,
                                                       outbox.c.idempotency_key]),
               returning=(outbox.c.target, outbox.c.idempotency_key))
_STATUS = (select(outbox.c.idempotency_key, outbox.c.status)
           .where(outbox.c.target == bindparam("row_target"),
                  outbox.c.idempotency_key.in_(bindparam("keys", expanding=True))))
CHUNK = 5000  # keys per IN list: well inside SQLite's and PostgreSQL's parameter limits
_REVIVE = Bulk(lambda _: update(outbox).where(outbox.c.target == bindparam("row_target"),
                                               outbox.c.idempotency_key == bindparam("key"),
                                               # Not IN (…): Bulk runs one compiled
                                               # statement, with no expanding lists.
                                               or_(*(outbox.c.status == s for s in REVIVABLE)))
               .values(status="pending", attempts=0, next_attempt_ms=0, last_error=None))


def enqueue_many(conn: Connection, commands: Sequence[NewCommand], *, at: datetime) -> list[str]:
    """Write commands in order, with one insert; return their idempotency keys.

    A command whose key is already pending or done is the same work arriving
    again (a replay, a duplicate event with new id) and is not written twice;
    one that was superseded or failed is put back in the queue.
    """
    payloads = [canonical_json(c.payload) for c in commands]
    keys = [key_of_json(c.target, c.kind, c.origin, payload)
            for c, payload in zip(commands, payloads, strict=True)]
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    repeats: Counter[str] = Counter()
    for key, c, payload in zip(keys, commands, payloads, strict=True):
        if (c.target, key) in rows:
            repeats[c.target] += 1  # the same work twice in one call
            continue
        rows[(c.target, key)] = {
            "target": c.target, "kind": c.kind, "idempotency_key": key,
            "aggregate_key": c.aggregate_key, "payload": payload,
            "correlation_id": c.correlation_id, "inbox_id": c.inbox_id,
            "record_kind": c.record_kind, "record_id": c.record_id,
            "depends_on": c.depends_on, "lane": c.lane}
    # Nearly every command at month-end is new: insert first, and look up only
    # the keys the outbox already held (ON CONFLICT also guards against another
    # worker writing the same key meanwhile).
    inserted = _insert_new(conn, rows, at)
    held = [k for k in rows if k not in inserted]
    there = _existing(conn, set(held))
    revive = {k for k in held if there.get(k) in REVIVABLE}
    for target, key in held:
        if (target, key) not in revive:
            repeats[target] += 1  # the same work again: it is queued or done already
    _REVIVE.run(conn, [{"row_target": t, "key": k} for t, k in revive])
    if inserted or revive:
        announce(conn)  # dispatchers that wait for work
    for (target, kind), count in Counter((t, rows[(t, k)]["kind"])
                                         for t, k in inserted).items():
        metrics.COMMANDS_ENQUEUED.labels(target, kind).inc(count)
    for target, count in repeats.items():
        metrics.DUPLICATES_PREVENTED.labels(target).inc(count)
    return keys


def _insert_new(conn: Connection, rows: Mapping[tuple[str, str], dict[str, Any]],
                at: datetime) -> set[tuple[str, str]]:
    """Insert the commands whose keys the outbox does not hold; the (target,
    key) of each one inserted."""
    values = list(rows.values())
    if not values:
        return set()
    # At month-end every command is new: inserted at the driver's speed, with
    # no RETURNING to build and read, when the count says each one went in.
    # Otherwise that insert is undone and made again saying which went in.
    with conn.begin_nested() as attempt:
        if _INSERT.run(conn, values, created_at=at) == len(values):
            return set(rows)
        attempt.rollback()
    return {(r.target, r.idempotency_key) for r in _INSERT.fetch(conn, values, created_at=at)}


def _existing(conn: Connection, wanted: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The status of each (target, key) already in the outbox."""
    by_target: dict[str, list[str]] = {}
    for target, key in wanted:
        by_target.setdefault(target, []).append(key)
    found: dict[tuple[str, str], str] = {}
    for target, target_keys in by_target.items():
        for start in range(0, len(target_keys), CHUNK):
            for row in conn.execute(_STATUS, {"row_target": target,
                                              "keys": target_keys[start:start + CHUNK]}):
                found[(target, row.idempotency_key)] = row.status
    return found
