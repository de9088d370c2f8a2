"""The inbox: every inbound event is stored before anything else happens,
deduplicated on (source, event id). A repeat is counted and dropped; a
malformed payload is kept raw and opened as an exception."""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from billbridge.connectors.base import Malformed, UnmappedPerson
from billbridge.domain.events import MalformedEvent, aggregate_key, parse_event
from billbridge.domain.reasons import ReasonCode
from billbridge.engine import metrics
from billbridge.engine.aggregates import bump_pending
from billbridge.engine.clock import Clock
from billbridge.engine.exception_queue import open_exception
from billbridge.store.bulk import Bulk
from billbridge.store.db import dialect_insert
from billbridge.store.tables import inbox, records


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


def new_correlation_id() -> str:
    """A random id that sorts by the time it was made (its first 48 bits are
    the millisecond): every index on correlation ids then grows at its end
    instead of at random places, which keeps a month-end burst's inserts in
    cache. 80 random bits make it unique; they need not be secret (the id
    grants nothing), so they come from a PRNG seeded by the OS, not from a
    system call per id (which was 7 % of the intake's CPU at month-end)."""
    return f"{time.time_ns() // 1_000_000:012x}{_IDS.getrandbits(80):020x}"


_IDS = random.Random()  # seeded from os.urandom, and again in a forked child:
os.register_at_fork(after_in_child=lambda: _IDS.seed())  # two processes, two sequences


def _decode(raw: Any) -> Any:
    """Parsed JSON, or the text itself when it is not JSON; other values as given."""
    if isinstance(raw, (bytes, bytearray)):
        raw = bytes(raw).decode("utf-8", errors="replace")
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, or nested past the parser's reach
        return raw


def _raw_text(raw: Any) -> str:
    """The body as received, kept with a malformed event."""
    if isinstance(raw, (bytes, bytearray)):
        return bytes(raw).decode("utf-8", errors="replace")
    return raw if isinstance(raw, str) else json.dumps(raw, default=str)


_SEEN = (select(inbox.c.id, inbox.c.event_id, inbox.c.correlation_id)
         .where(inbox.c.source == bindparam("source"),
                inbox.c.event_id.in_(bindparam("event_ids", expanding=True))))
_REPEATED = (update(inbox).where(inbox.c.id == bindparam("row_id"))
             .values(duplicates=inbox.c.duplicates + bindparam("repeats")))
_CHUNK = 5000  # ids per IN list: well inside SQLite's and PostgreSQL's parameter limits
_COLUMNS = ("event_id", "event_type", "aggregate_key", "correlation_id", "occurred_at",
            "payload")


# The insert of accepted events, straight through the driver (SQLAlchemy's
# own multi-row insert built every row's parameters in Python: a fifth of the
# intake's CPU at month-end). ``source`` and ``received_at`` are the same for a
# whole delivery; ``fetch`` returns the rows it inserted.
_ADD = Bulk(lambda conn: dialect_insert(conn)(inbox)
            .values(status="pending", duplicates=0, attempts=0, replay=False,
                    source=bindparam("source"), received_at=bindparam("received_at"),
                    **{column: bindparam(column) for column in _COLUMNS})
            .on_conflict_do_nothing(index_elements=[inbox.c.source, inbox.c.event_id]),
            returning=(inbox.c.id, inbox.c.event_id))


@dataclass(frozen=True, slots=True)
class _Bad:
    """A delivery that is not a valid event: kept raw with what is wrong."""

    given: Any
    text: str
    message: str
    unmapped: UnmappedPerson | None = None


@dataclass(frozen=True, slots=True)
class Prepared:
    """A delivery decoded and validated, ready to store: this work happens
    before the transaction, so the store's write lock is held only to write."""

    source: str
    items: list[dict[str, Any] | _Bad]  # an inbox row per valid event, in order

    def refusals(self) -> list[str | None]:
        """Why each item is not a valid event, None for one that is; in order,
        as ``store`` answers them."""
        return [item.message if isinstance(item, _Bad) else None for item in self.items]


def prepare(raws: Iterable[Any], *, source: str) -> Prepared:
    items: list[dict[str, Any] | _Bad] = []
    for raw in raws:
        if isinstance(raw, Malformed):
            value = {"id": raw.event_id} if raw.event_id else _decode(raw.raw)
            items.append(_Bad(value, _raw_text(raw.raw), raw.reason, raw.unmapped))
            continue
        value = _decode(raw)
        if isinstance(value, dict):
            value = {"source": source, **value}
        try:
            event = parse_event(value)
            if event.source != source:
                raise MalformedEvent(
                    f"event says source {event.source!r} but arrived from {source!r}")
        except MalformedEvent as exc:
            items.append(_Bad(value, _raw_text(raw), str(exc)))
            continue
        items.append({"source": source, "event_id": event.id, "event_type": event.type,
                      "aggregate_key": aggregate_key(event),
                      "correlation_id": event.correlation_id or new_correlation_id(),
                      "occurred_at": event.at, "payload": event.model_dump_json()})
    return Prepared(source, items)


def ingest(conn: Connection, raw: Any, *, source: str, clock: Clock) -> IngestResult:
    return ingest_many(conn, [raw], source=source, clock=clock)[0]


def ingest_many(conn: Connection, raws: Iterable[Any], *, source: str,
                clock: Clock) -> list[IngestResult]:
    """Store events in the caller's transaction; return one result each, in order."""
    return store(conn, prepare(raws, source=source), clock=clock)


def store(conn: Connection, prepared: Prepared, *, clock: Clock) -> list[IngestResult]:
    """Store a prepared delivery in the caller's transaction; one result per event.

    Valid events are written with one multi-row insert (in arrival order, so
    inbox ids keep source order; a malformed one is stored after the valid
    ones before it); whatever the unique (source, event id) index refused is a
    repeat, counted on the first delivery."""
    now = clock.now()
    source = prepared.source
    results: list[IngestResult | None] = []
    accepted: dict[str, dict[str, Any]] = {}  # event id → row, first delivery only
    positions: list[tuple[int, str]] = []  # (result index, event id) of every valid event
    for item in prepared.items:
        if isinstance(item, _Bad):
            if positions:
                _store_accepted(conn, source, accepted, positions, results)
                accepted, positions = {}, []
            results.append(_store_malformed(conn, item, source, clock))
            continue
        positions.append((len(results), item["event_id"]))
        results.append(None)
        accepted.setdefault(item["event_id"], {**item, "received_at": now})
    if positions:
        _store_accepted(conn, source, accepted, positions, results)
    return [r for r in results if r is not None]


def _store_accepted(conn: Connection, source: str, accepted: dict[str, dict[str, Any]],
                    positions: list[tuple[int, str]],
                    results: list[IngestResult | None]) -> None:
    inserted = _insert(conn, source, accepted)
    known = {e: (inserted[e], row["correlation_id"]) for e, row in accepted.items()
             if e in inserted}
    known.update(_seen(conn, source, [e for e in accepted if e not in inserted]))
    pending: Counter[str] = Counter()
    types: Counter[str] = Counter()
    repeats: Counter[int] = Counter()
    fresh = set(inserted)
    for index, event_id in positions:
        row_id, correlation_id = known[event_id]
        if event_id in fresh:
            fresh.discard(event_id)  # later deliveries of it in this call are repeats
            pending[accepted[event_id]["aggregate_key"]] += 1
            types[accepted[event_id]["event_type"]] += 1
            results[index] = IngestResult(IngestStatus.ACCEPTED, row_id, event_id,
                                          correlation_id)
        else:
            repeats[row_id] += 1
            results[index] = IngestResult(IngestStatus.DUPLICATE, row_id, event_id,
                                          correlation_id)
    if repeats:
        conn.execute(_REPEATED, [{"row_id": k, "repeats": n} for k, n in repeats.items()])
        metrics.EVENTS_DEDUPLICATED.labels(source).inc(sum(repeats.values()))
    for event_type, count in types.items():
        metrics.EVENTS_RECEIVED.labels(source, event_type).inc(count)
    bump_pending(conn, pending)


def _insert(conn: Connection, source: str, accepted: dict[str, dict[str, Any]]
            ) -> dict[str, int]:
    """Insert the events not stored yet, in order; the inbox id of each one
    this call inserted (the others are repeats: RETURNING names only the rows
    that went in, so another intake inserting the same event meanwhile is
    told apart too)."""
    rows = list(accepted.values())
    return {r.event_id: int(r.id) for r in _ADD.fetch(
        conn, rows, source=source, received_at=rows[0]["received_at"])}


def _seen(conn: Connection, source: str, event_ids: list[str]) -> dict[str, tuple[int, str]]:
    """(inbox id, correlation id) of each of these events already stored."""
    found: dict[str, tuple[int, str]] = {}
    for start in range(0, len(event_ids), _CHUNK):
        for r in conn.execute(_SEEN, {"source": source,
                                      "event_ids": event_ids[start:start + _CHUNK]}):
            found[r.event_id] = (int(r.id), r.correlation_id)
    return found


def _count_duplicate(conn: Connection, source: str, event_id: str) -> IngestResult:
    row = conn.execute(
        update(inbox).where(inbox.c.source == source, inbox.c.event_id == event_id)
        .values(duplicates=inbox.c.duplicates + 1)
        .returning(inbox.c.id, inbox.c.correlation_id)).one()
    metrics.EVENTS_DEDUPLICATED.labels(source).inc()
    return IngestResult(IngestStatus.DUPLICATE, int(row.id), event_id, row.correlation_id)


UNMAPPED = "unmapped_time"
"""Records of time whose user the connection does not map, one per entry."""


def _keep_unmapped(conn: Connection, person: UnmappedPerson, correlation_id: str,
                   clock: Clock) -> None:
    """The entry's latest unmapped version, for reconcile and the leakage page."""
    conn.execute(delete(records).where(records.c.kind == UNMAPPED,
                                       records.c.id == person.entry))
    conn.execute(insert(records).values(
        kind=UNMAPPED, id=person.entry, data=json.dumps(asdict(person)),
        status="approved" if person.approved else "submitted", version=1,
        correlation_id=correlation_id, updated_at=clock.now()))


def _store_malformed(conn: Connection, bad: _Bad, source: str, clock: Clock) -> IngestResult:
    value, text, message = bad.given, bad.text, bad.message
    given_id = value.get("id") if isinstance(value, dict) else None
    event_id = (given_id if isinstance(given_id, str) and given_id
                else "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:40])
    given_type = value.get("type") if isinstance(value, dict) else None
    event_type = given_type if isinstance(given_type, str) else "unknown"
    correlation_id = new_correlation_id()
    stmt = dialect_insert(conn)(inbox).values(
        source=source, event_id=event_id[:200], event_type=event_type[:64],
        aggregate_key=f"malformed:{source}", correlation_id=correlation_id,
        received_at=clock.now(), raw=text, status="failed", duplicates=0, attempts=0,
    ).on_conflict_do_nothing(index_elements=[inbox.c.source, inbox.c.event_id])
    inserted = conn.execute(stmt.returning(inbox.c.id)).scalar()
    if inserted is None:
        return _count_duplicate(conn, source, event_id)
    metrics.EVENTS_MALFORMED.labels(source).inc()
    person = bad.unmapped
    open_exception(conn, reason=ReasonCode.MALFORMED_PAYLOAD, stage="inbound",
                   message=f"{source} event {event_id}: {message}", inbox_id=int(inserted),
                   raw=text, correlation_id=correlation_id, at=clock.now(),
                   record_kind="time_entry" if person else None,
                   record_id=person.entry if person else None)
    if person is not None:
        _keep_unmapped(conn, person, correlation_id, clock)
    return IngestResult(IngestStatus.MALFORMED, int(inserted), event_id, correlation_id,
                        message)
