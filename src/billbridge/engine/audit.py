"""The append-only audit log. Each row carries the hash of the row before it,
so an edited or deleted row breaks the chain and ``verify`` names it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select

from billbridge.domain.idempotency import canonical_json
from billbridge.store.tables import audit_log

GENESIS = "0" * 64


def _digest(prev_hash: str, at: datetime, actor: str, action: str, subject: str,
            detail: str, correlation_id: str | None) -> str:
    if at.tzinfo is None:  # SQLite hands datetimes back naive; they were stored as UTC
        at = at.replace(tzinfo=UTC)
    material = canonical_json([prev_hash, at.astimezone(UTC).isoformat(), actor, action,
                               subject, detail, correlation_id])
    return hashlib.sha256(material.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Entry:
    """One audit row to append."""

    at: datetime
    actor: str
    action: str
    subject: str
    detail: dict[str, Any] | None = None
    correlation_id: str | None = None


def record(conn: Connection, *, at: datetime, actor: str, action: str, subject: str,
           detail: dict[str, Any] | None = None, correlation_id: str | None = None) -> None:
    """Append one audit row in the caller's transaction."""
    record_many(conn, [Entry(at, actor, action, subject, detail, correlation_id)])


def record_many(conn: Connection, entries: list[Entry]) -> None:
    """Append rows in order in the caller's transaction, each hashing the one
    before it; one read of the chain's end and one insert however many."""
    if not entries:
        return
    if conn.dialect.name == "postgresql":
        # Appenders take turns so that the chain never forks.
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(724101)")
    prev = conn.execute(select(audit_log.c.hash).order_by(audit_log.c.id.desc()).limit(1))
    prev_hash = prev.scalar() or GENESIS
    rows = []
    for entry in entries:
        detail_json = canonical_json(entry.detail or {})
        digest = _digest(prev_hash, entry.at, entry.actor, entry.action, entry.subject,
                         detail_json, entry.correlation_id)
        rows.append({"at": entry.at, "actor": entry.actor, "action": entry.action,
                     "subject": entry.subject, "detail": detail_json,
                     "correlation_id": entry.correlation_id, "prev_hash": prev_hash,
                     "hash": digest})
        prev_hash = digest
    conn.execute(audit_log.insert(), rows)


@dataclass(frozen=True, slots=True)
class AuditBreak:
    row_id: int
    problem: str


def verify(conn: Connection) -> list[AuditBreak]:
    """Every place where the chain does not hold (empty when it is intact)."""
    breaks: list[AuditBreak] = []
    prev_hash = GENESIS
    for row in conn.execute(select(audit_log).order_by(audit_log.c.id)):
        if row.prev_hash != prev_hash:
            breaks.append(AuditBreak(row.id, "a row before it was deleted or altered"))
        expected = _digest(row.prev_hash, row.at, row.actor, row.action, row.subject, row.detail,
                           row.correlation_id)
        if row.hash != expected:
            breaks.append(AuditBreak(row.id, "its content does not match its hash"))
        prev_hash = row.hash
    return breaks


def entries(conn: Connection, limit: int = 100) -> list[dict[str, Any]]:
    rows = conn.execute(select(audit_log).order_by(audit_log.c.id.desc()).limit(limit))
    return [dict(r._mapping) | {"detail": json.loads(r.detail)} for r in rows]
