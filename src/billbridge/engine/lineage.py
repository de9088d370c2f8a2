"""Lineage: from any source event, canonical record, outbox command or target
posting id, the whole chain from source event to target postings and back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, or_, select

from billbridge.store import binder
from billbridge.store.tables import delivery_attempts, exceptions, inbox, outbox, records

MAX_ROW_ID = 2**63 - 1


@dataclass
class Lineage:
    query: str
    correlation_ids: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    commands: list[dict[str, Any]] = field(default_factory=list)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    postings: list[dict[str, Any]] = field(default_factory=list)
    exceptions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return bool(self.correlation_ids)


def _rows(conn: Connection, query: Any) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(query)]


def _correlations_of(conn: Connection, ident: str) -> set[str]:
    found: set[str] = set()
    # Row ids are 64-bit: a longer number, or digits from another script
    # ('²'), can name no row, only an external id.
    numeric = int(ident) if ident.isascii() and ident.isdigit() else None
    if numeric is not None and numeric > MAX_ROW_ID:
        numeric = None
    probes = [
        select(inbox.c.correlation_id).where(or_(inbox.c.event_id == ident,
                                                 inbox.c.correlation_id == ident,
                                                 inbox.c.id == numeric)),
        select(records.c.correlation_id).where(records.c.id == ident),
        select(outbox.c.correlation_id).where(or_(outbox.c.idempotency_key == ident,
                                                  outbox.c.external_id == ident,
                                                  outbox.c.record_id == ident)),
        select(exceptions.c.correlation_id).where(exceptions.c.record_id == ident),
    ]
    for probe in probes:
        found.update(r[0] for r in conn.execute(probe))
    found |= binder.correlations_naming(conn, ident)
    # A canonical record touched by several events (a time entry and its
    # charge) links every event that changed it.
    return found


def trace(conn: Connection, ident: str) -> Lineage:
    result = Lineage(query=ident)
    correlations = _correlations_of(conn, ident)
    if not correlations:
        return result
    corr = sorted(correlations)
    result.correlation_ids = corr
    result.events = _rows(conn, select(inbox.c.id, inbox.c.source, inbox.c.event_id,
                                       inbox.c.event_type, inbox.c.status, inbox.c.waiting_on,
                                       inbox.c.duplicates, inbox.c.received_at,
                                       inbox.c.processed_at, inbox.c.correlation_id)
                          .where(inbox.c.correlation_id.in_(corr)).order_by(inbox.c.id))
    result.records = _rows(conn, select(records.c.kind, records.c.id, records.c.status,
                                        records.c.version, records.c.config_version,
                                        records.c.updated_at)
                           .where(records.c.correlation_id.in_(corr)))
    result.commands = _rows(conn, select(outbox.c.id, outbox.c.target, outbox.c.kind,
                                         outbox.c.idempotency_key, outbox.c.status,
                                         outbox.c.attempts, outbox.c.external_id,
                                         outbox.c.record_kind, outbox.c.record_id,
                                         outbox.c.created_at, outbox.c.done_at)
                            .where(outbox.c.correlation_id.in_(corr)).order_by(outbox.c.id))
    result.attempts = _rows(conn, select(delivery_attempts)
                            .where(delivery_attempts.c.correlation_id.in_(corr))
                            .order_by(delivery_attempts.c.id))
    result.postings = binder.made_in(conn, corr)
    result.exceptions = _rows(conn, select(exceptions.c.id, exceptions.c.reason,
                                           exceptions.c.status, exceptions.c.message,
                                           exceptions.c.record_id, exceptions.c.created_at)
                              .where(exceptions.c.correlation_id.in_(corr))
                              .order_by(exceptions.c.id))
    return result
