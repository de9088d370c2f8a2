"""The transactional outbox: commands are written in the same transaction as
the state change that caused them, keyed by the one idempotency-key function."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, update

from billbridge.domain.idempotency import canonical_json, idempotency_key
from billbridge.engine import metrics
from billbridge.store.db import dialect_insert
from billbridge.store.tables import outbox

REVIVABLE = ("superseded", "failed")


@dataclass(frozen=True, slots=True)
class NewCommand:
    """A command to write: what to send, to which target, on behalf of what."""

    target: str
    kind: str
    origin: str
    payload: Mapping[str, Any]
    aggregate_key: str
    correlation_id: str
    inbox_id: int | None = None
    record_kind: str | None = None
    record_id: str | None = None
    depends_on: str | None = None


_INSERTS: dict[str, Any] = {}
_COLUMNS = ("target", "kind", "idempotency_key", "aggregate_key", "payload", "correlation_id",
            "inbox_id", "record_kind", "record_id", "depends_on", "created_at")
_REVIVE = (update(outbox).where(outbox.c.target == bindparam("row_target"),
                                outbox.c.idempotency_key == bindparam("key"),
                                outbox.c.status.in_(REVIVABLE))
           .values(status="pending", attempts=0, next_attempt_ms=0, last_error=None))


def _insert(conn: Connection) -> Any:
    """The insert, built once per dialect (building it per command is costly)."""
    name = conn.dialect.name
    if name not in _INSERTS:
        _INSERTS[name] = (
            dialect_insert(conn)(outbox)
            .values(status="pending", attempts=0, next_attempt_ms=0,
                    **{column: bindparam(column) for column in _COLUMNS})
            .on_conflict_do_nothing(index_elements=[outbox.c.target, outbox.c.idempotency_key])
            .returning(outbox.c.target, outbox.c.idempotency_key))
    return _INSERTS[name]


def enqueue_many(conn: Connection, commands: Sequence[NewCommand], *, at: datetime) -> list[str]:
    """Write commands in order, with one insert; return their idempotency keys.

    A command whose key is already pending or done is the same work arriving
    again (a replay, a duplicate event with new id) and is not written twice;
    one that was superseded or failed is put back in the queue.
    """
    keys = [idempotency_key(c.target, c.kind, c.origin, c.payload) for c in commands]
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    repeats: Counter[str] = Counter()
    for key, c in zip(keys, commands, strict=True):
        if (c.target, key) in rows:
            repeats[c.target] += 1  # the same work twice in one batch
            continue
        rows[(c.target, key)] = {
            "target": c.target, "kind": c.kind, "idempotency_key": key,
            "aggregate_key": c.aggregate_key, "payload": canonical_json(c.payload),
            "correlation_id": c.correlation_id, "inbox_id": c.inbox_id,
            "record_kind": c.record_kind, "record_id": c.record_id,
            "depends_on": c.depends_on, "created_at": at}
    inserted = {(r.target, r.idempotency_key) for r in conn.execute(_insert(conn),
                                                                      list(rows.values()))}
    for (target, kind), count in Counter((t, rows[(t, k)]["kind"]) for t, k in inserted).items():
        metrics.COMMANDS_ENQUEUED.labels(target, kind).inc(count)
    for target, key in rows.keys() - inserted:
        revived = conn.execute(_REVIVE, {"row_target": target, "key": key})
        if revived.rowcount == 0:
            metrics.DUPLICATES_PREVENTED.labels(target).inc()
    for target, count in repeats.items():
        metrics.DUPLICATES_PREVENTED.labels(target).inc(count)
    return keys
