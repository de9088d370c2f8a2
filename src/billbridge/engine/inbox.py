"""The inbox: every inbound event is stored before anything else happens,
deduplicated on (source, event id). A repeat is counted and dropped; a
malformed payload is kept raw and opened as an exception."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, update

from billbridge.connectors.base import Malformed
from billbridge.domain.events import MalformedEvent, aggregate_key, parse_event
from billbridge.domain.reasons import ReasonCode
from billbridge.engine import metrics
from billbridge.engine.aggregates import bump_pending
from billbridge.engine.clock import Clock
from billbridge.engine.exception_queue import open_exception
from billbridge.store.db import dialect_insert
from billbridge.store.tables import inbox


class IngestStatus(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    MALFORMED = "malformed"


@dataclass(frozen=True, slots=True)
class IngestResult:
    status: IngestStatus
    inbox_id: int | None
    event_id: str
    correlation_id: str
    message: str | None = None


def _decode(raw: Any) -> tuple[Any, str]:
    """(parsed JSON or the undecodable text, the raw text to keep)."""
    if isinstance(raw, (bytes, bytearray)):
        text = bytes(raw).decode("utf-8", errors="replace")
    elif isinstance(raw, str):
        text = raw
    else:
        return raw, json.dumps(raw, default=str)
    try:
        return json.loads(text), text
    except ValueError:
        return text, text


_INSERTS: dict[str, Any] = {}


def _insert_event(conn: Connection) -> Any:
    """The insert-unless-seen statement, built once per dialect: on the webhook
    path building it per event cost more than running it."""
    name = conn.dialect.name
    if name not in _INSERTS:
        _INSERTS[name] = dialect_insert(conn)(inbox).on_conflict_do_nothing(
            index_elements=[inbox.c.source, inbox.c.event_id]).returning(
            inbox.c.id, inbox.c.event_id)
    return _INSERTS[name]


def ingest(conn: Connection, raw: Any, *, source: str, clock: Clock) -> IngestResult:
    return ingest_many(conn, [raw], source=source, clock=clock)[0]


def ingest_many(conn: Connection, raws: Iterable[Any], *, source: str,
                clock: Clock) -> list[IngestResult]:
    """Store events in the caller's transaction; return one result each.

    Valid events are inserted together (one multi-row statement), in arrival
    order: those before a malformed one are inserted before it is stored."""
    now = clock.now()
    results: list[IngestResult] = []
    pending: Counter[str] = Counter()
    rows: list[dict[str, Any]] = []
    for raw in raws:
        if isinstance(raw, Malformed):
            results += _insert_new(conn, rows, pending)
            rows = []
            value, text = _decode(raw.raw)
            given = {"id": raw.event_id} if raw.event_id else value
            results.append(_store_malformed(conn, given, text, source, raw.reason, clock))
            continue
        value, text = _decode(raw)
        if isinstance(value, dict):
            value = {"source": source, **value}
        try:
            event = parse_event(value)
            if event.source != source:
                raise MalformedEvent(
                    f"event says source {event.source!r} but arrived from {source!r}")
        except MalformedEvent as exc:
            results += _insert_new(conn, rows, pending)
            rows = []
            results.append(_store_malformed(conn, value, text, source, str(exc), clock))
            continue
        rows.append({
            "source": source, "event_id": event.id, "event_type": event.type,
            "aggregate_key": aggregate_key(event),
            "correlation_id": event.correlation_id or uuid.uuid4().hex,
            "occurred_at": event.at, "received_at": now, "payload": event.model_dump_json(),
            "status": "pending", "duplicates": 0, "attempts": 0})
    results += _insert_new(conn, rows, pending)
    bump_pending(conn, pending)
    return results


def _insert_new(conn: Connection, rows: list[dict[str, Any]],
                pending: Counter[str]) -> list[IngestResult]:
    """Insert the rows not seen before in one statement; count the others
    (seen in the store, or earlier in ``rows``) as duplicates."""
    if not rows:
        return []
    first: dict[str, dict[str, Any]] = {}
    for row in rows:
        first.setdefault(row["event_id"], row)
    inserted = {r.event_id: int(r.id)
                for r in conn.execute(_insert_event(conn), list(first.values()))}
    results = []
    for row in rows:
        event_id = row["event_id"]
        if event_id not in inserted or first[event_id] is not row:
            results.append(_count_duplicate(conn, row["source"], event_id))
            continue
        pending[row["aggregate_key"]] += 1
        metrics.EVENTS_RECEIVED.labels(row["source"], row["event_type"]).inc()
        results.append(IngestResult(IngestStatus.ACCEPTED, inserted[event_id], event_id,
                                    row["correlation_id"]))
    return results


def _count_duplicate(conn: Connection, source: str, event_id: str) -> IngestResult:
    row = conn.execute(
        update(inbox).where(inbox.c.source == source, inbox.c.event_id == event_id)
        .values(duplicates=inbox.c.duplicates + 1)
        .returning(inbox.c.id, inbox.c.correlation_id)).one()
    metrics.EVENTS_DEDUPLICATED.labels(source).inc()
    return IngestResult(IngestStatus.DUPLICATE, int(row.id), event_id, row.correlation_id)


def _store_malformed(conn: Connection, value: Any, text: str, source: str, message: str,
                     clock: Clock) -> IngestResult:
    given_id = value.get("id") if isinstance(value, dict) else None
    event_id = (given_id if isinstance(given_id, str) and given_id
                else "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:40])
    given_type = value.get("type") if isinstance(value, dict) else None
    event_type = given_type if isinstance(given_type, str) else "unknown"
    correlation_id = uuid.uuid4().hex
    stmt = dialect_insert(conn)(inbox).values(
        source=source, event_id=event_id[:200], event_type=event_type[:64],
        aggregate_key=f"malformed:{source}", correlation_id=correlation_id,
        received_at=clock.now(), raw=text, status="failed", duplicates=0, attempts=0,
    ).on_conflict_do_nothing(index_elements=[inbox.c.source, inbox.c.event_id])
    inserted = conn.execute(stmt.returning(inbox.c.id)).scalar()
    if inserted is None:
        return _count_duplicate(conn, source, event_id)
    metrics.EVENTS_MALFORMED.labels(source).inc()
    open_exception(conn, reason=ReasonCode.MALFORMED_PAYLOAD, stage="inbound",
                   message=f"{source} event {event_id}: {message}", inbox_id=int(inserted),
                   raw=text, correlation_id=correlation_id, at=clock.now())
    return IngestResult(IngestStatus.MALFORMED, int(inserted), event_id, correlation_id,
                        message)
