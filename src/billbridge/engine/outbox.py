"""The transactional outbox: commands are written in the same transaction as
the state change that caused them, keyed by the one idempotency-key function."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, update

from billbridge.domain.idempotency import canonical_json, idempotency_key
from billbridge.engine import metrics
from billbridge.store.db import dialect_insert
from billbridge.store.tables import outbox

REVIVABLE = ("superseded", "failed")


_INSERTS: dict[str, Any] = {}
_COLUMNS = ("target", "kind", "idempotency_key", "aggregate_key", "payload", "correlation_id",
            "inbox_id", "record_kind", "record_id", "depends_on", "created_at")


def _insert(conn: Connection) -> Any:
    """The insert, built once per dialect (building it per command is costly)."""
    name = conn.dialect.name
    if name not in _INSERTS:
        _INSERTS[name] = (
            dialect_insert(conn)(outbox)
            .values(status="pending", attempts=0, next_attempt_ms=0,
                    **{column: bindparam(column) for column in _COLUMNS})
            .on_conflict_do_nothing(index_elements=[outbox.c.target, outbox.c.idempotency_key])
            .returning(outbox.c.id))
    return _INSERTS[name]


def enqueue(conn: Connection, *, target: str, kind: str, origin: str,
            payload: Mapping[str, Any], aggregate_key: str, correlation_id: str, at: datetime,
            inbox_id: int | None = None, record_kind: str | None = None,
            record_id: str | None = None, depends_on: str | None = None) -> str:
    """Write one command; return its idempotency key.

    A command whose key is already pending or done is the same work arriving
    again (a replay, a duplicate event with new id) and is not written twice;
    one that was superseded or failed is put back in the queue.
    """
    key = idempotency_key(target, kind, origin, payload)
    inserted = conn.execute(_insert(conn), {
        "target": target, "kind": kind, "idempotency_key": key,
        "aggregate_key": aggregate_key, "payload": canonical_json(payload),
        "correlation_id": correlation_id, "inbox_id": inbox_id, "record_kind": record_kind,
        "record_id": record_id, "depends_on": depends_on, "created_at": at}).scalar()
    if inserted is not None:
        metrics.COMMANDS_ENQUEUED.labels(target, kind).inc()
        return key
    revived = conn.execute(
        update(outbox).where(outbox.c.target == target, outbox.c.idempotency_key == key,
                             outbox.c.status.in_(REVIVABLE))
        .values(status="pending", attempts=0, next_attempt_ms=0, last_error=None))
    if revived.rowcount == 0:
        metrics.DUPLICATES_PREVENTED.labels(target).inc()
    return key

