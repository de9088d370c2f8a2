"""Queues and health: the inbox and the outbox as pages, the queue depth, the
store's health and the operations overview."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, select, text

from billbridge.engine import config_store, exception_queue, metrics
from billbridge.services._rows import plain
from billbridge.store import queries
from billbridge.store.tables import dispatch_lanes, inbox, outbox, target_leases


def inbox_page(conn: Connection, *, status: str | None, cursor: int | None,
               limit: int) -> list[dict[str, Any]]:
    """Inbox events in inbox order after ``cursor``."""
    query = select(inbox.c.id, inbox.c.source, inbox.c.event_id, inbox.c.event_type,
                   inbox.c.aggregate_key, inbox.c.status, inbox.c.waiting_on,
                   inbox.c.duplicates, inbox.c.received_at, inbox.c.correlation_id)
    if status:
        query = query.where(inbox.c.status == status)
    if cursor is not None:
        query = query.where(inbox.c.id > cursor)
    return plain(conn.execute(query.order_by(inbox.c.id).limit(limit)))


def outbox_page(conn: Connection, *, status: str | None, target: str | None,
                cursor: int | None, limit: int) -> list[dict[str, Any]]:
    """Outbox commands in outbox order after ``cursor``."""
    query = select(outbox.c.id, outbox.c.target, outbox.c.kind, outbox.c.status,
                   outbox.c.attempts, outbox.c.external_id, outbox.c.record_kind,
                   outbox.c.record_id, outbox.c.last_error, outbox.c.correlation_id)
    if status:
        query = query.where(outbox.c.status == status)
    if target:
        query = query.where(outbox.c.target == target)
    if cursor is not None:
        query = query.where(outbox.c.id > cursor)
    return plain(conn.execute(query.order_by(outbox.c.id).limit(limit)))


@dataclass(frozen=True)
class Health:
    status: str
    database: str


def health(engine: Engine) -> Health:
    """The store answers (an error from the driver when it does not)."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return Health("ok", engine.dialect.name)


def active_config(engine: Engine) -> int:
    """The active configuration version, 0 while none is: not ready."""
    with engine.connect() as conn:
        return config_store.active_version(conn)


def publish_gauges(engine: Engine) -> None:
    """Set the queue-depth and waiting-inbox gauges from the store, for a scrape."""
    with engine.connect() as conn:
        for target, depth in queries.outbox_depth(conn).items():
            metrics.QUEUE_DEPTH.labels(target).set(depth)
        for status, count in queries.inbox_by_status(conn, "pending", "parked").items():
            metrics.INBOX_WAITING.labels(status).set(count)


@dataclass
class Overview:
    """What the operations overview shows."""

    inbox: dict[str, int]
    by_reason: list[tuple[str, int]]
    depth: dict[str, int]
    targets: list[Any]
    """Each target's pace and circuit (``target``, ``circuit``, ...)."""
    sending: dict[str, list[str]]
    """Target -> who holds its dispatch lanes now."""
    latency: dict[str, str]
    hours: list[tuple[str, int, int]] = field(default_factory=list)
    """(hour, events in, postings out) over the last 24 hours with activity."""

    @property
    def parked(self) -> int:
        return self.inbox.get("parked", 0)

    @property
    def open_total(self) -> int:
        return sum(n for _, n in self.by_reason)


def overview(engine: Engine, *, now_ms: int) -> Overview:
    with engine.connect() as conn:
        by_reason = exception_queue.open_by_reason(conn).most_common()
        sending: dict[str, list[str]] = {}
        for lane in conn.execute(select(dispatch_lanes.c.target, dispatch_lanes.c.lease_owner)
                                 .where(dispatch_lanes.c.lease_owner.is_not(None),
                                        dispatch_lanes.c.lease_until_ms >= now_ms)
                                 .order_by(dispatch_lanes.c.lane)):
            sending.setdefault(lane.target, []).append(lane.lease_owner)
        return Overview(inbox=queries.inbox_by_status(conn), by_reason=by_reason,
                        depth=queries.outbox_depth(conn),
                        targets=list(conn.execute(select(target_leases)).all()),
                        sending=sending, latency=_latency(conn), hours=_per_hour(conn))


LATENCY_MIN_SAMPLES = 20


def _latency(conn: Connection) -> dict[str, str]:
    """Source → ERP posting over the latest postings (at most 5,000), with how
    many there were and when: a figure without its sample says little."""
    rows = conn.execute(
        select(inbox.c.received_at, outbox.c.done_at)
        .join(outbox, outbox.c.inbox_id == inbox.c.id)
        .where(outbox.c.status == "done", outbox.c.kind == "time_charge.post")
        .order_by(outbox.c.id.desc()).limit(5000)).all()
    timed = [r for r in rows if r.done_at and r.received_at]
    seconds = sorted((r.done_at - r.received_at).total_seconds() for r in timed)
    if not seconds:
        return {"p50": "—", "p95": "—", "samples": "0", "window": "no postings yet"}
    first, last = min(r.received_at for r in timed), max(r.done_at for r in timed)
    window = f"{first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC"
    shown = {"p50": f"{statistics.median(seconds):.2f} s", "samples": str(len(seconds)),
             "window": window}
    if len(seconds) < LATENCY_MIN_SAMPLES:  # a 95th percentile of a handful is their maximum
        return shown | {"p95": f"— (needs {LATENCY_MIN_SAMPLES} postings)"}
    p95 = seconds[min(len(seconds) - 1, int(len(seconds) * 0.95))]
    return shown | {"p95": f"{p95:.2f} s"}


def _per_hour(conn: Connection) -> list[tuple[str, int, int]]:
    def bucket(column: Any) -> Any:
        if conn.dialect.name == "postgresql":
            return func.to_char(column, "YYYY-MM-DD HH24:00")
        return func.strftime("%Y-%m-%d %H:00", column)

    since = datetime.now(UTC) - timedelta(hours=24)
    # Grouped by position: PostgreSQL sees two bound format strings as two
    # different expressions otherwise.
    events: dict[str, int] = dict(conn.execute(select(bucket(inbox.c.received_at), func.count())
                               .where(inbox.c.received_at >= since)
                               .group_by(text("1"))).all())
    postings: dict[str, int] = dict(conn.execute(select(bucket(outbox.c.done_at), func.count())
                                 .where(outbox.c.status == "done", outbox.c.done_at >= since)
                                 .group_by(text("1"))).all())
    return [(h, events.get(h, 0), postings.get(h, 0))
            for h in sorted(set(events) | set(postings))]
