"""Vendor drift as the engine keeps it: what a source's contract watch
reports while a page is read is counted (``billbridge_vendor_drift_total``)
and kept per connection, record type, field and kind with first and last
seen and the latest record as a sample, in the page's own transaction."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, select

from billbridge.connectors.contracts import Drift
from billbridge.engine import audit
from billbridge.engine.metrics import VENDOR_DRIFT
from billbridge.store.db import dialect_insert
from billbridge.store.tables import vendor_baselines, vendor_drift

SAMPLE_CHARS = 4000


@dataclass
class DriftLog:
    """The observer the engine hands a source's ``contracts`` watch."""

    connection: str
    api_version: str
    pending: list[Drift] = field(default_factory=list)

    def __call__(self, drift: Drift) -> None:
        self.pending.append(drift)

    def take(self) -> list[Drift]:
        taken, self.pending = self.pending, []
        return taken


def watch(conn: Connection, source: Any) -> DriftLog | None:
    """Wire a ``DriftLog`` to a source that checks a contract (its ``contracts``),
    with the connection's reviewed baseline accepted into it."""
    contracts = getattr(source, "contracts", None)
    if contracts is None:
        return None
    shape = baseline(conn, source.name)
    if shape is not None:
        contracts.contract = contracts.contract.accepting(shape)
    log = DriftLog(source.name, contracts.contract.api_version)
    contracts.observer = log
    return log


class DeliveryDrift:
    """The observer the webhook door hands a receiver's ``contracts`` watch.
    Receivers open deliveries in threads of their own, several at once, so the
    drift is kept per thread and taken once its delivery is opened: what one
    delivery showed is kept with that delivery's events."""

    def __init__(self, connection: str, api_version: str) -> None:
        self.connection = connection
        self.api_version = api_version
        self._local = threading.local()

    def __call__(self, drift: Drift) -> None:
        pending: list[Drift] | None = getattr(self._local, "pending", None)
        if pending is None:
            pending = self._local.pending = []
        pending.append(drift)

    def take(self) -> list[Drift]:
        taken: list[Drift] = getattr(self._local, "pending", None) or []
        self._local.pending = []
        return taken


def watch_receiver(engine: Engine, connection: str, receiver: Any) -> DeliveryDrift | None:
    """Wire a ``DeliveryDrift`` to a webhook receiver that checks a contract (its
    ``contracts``: one whose deliveries carry records, or that reads them again
    from its vendor), with the connection's reviewed baseline accepted."""
    contracts = getattr(receiver, "contracts", None)
    if contracts is None:
        return None
    with engine.connect() as conn:
        shape = baseline(conn, connection)
    if shape is not None:
        contracts.contract = contracts.contract.accepting(shape)
    log = DeliveryDrift(connection, contracts.contract.api_version)
    contracts.observer = log
    return log


def _sample(record: Any) -> str:
    text = json.dumps(record, default=str, sort_keys=True)
    return text if len(text) <= SAMPLE_CHARS else text[:SAMPLE_CHARS] + "…"


def keep(conn: Connection, connection: str, api_version: str, drifts: Sequence[Drift],
         at: datetime) -> int:
    """Count and store ``drifts``; the number of findings kept."""
    tally: dict[tuple[str, str, str], tuple[int, Any, str, str]] = {}
    for drift in drifts:
        for finding in drift.findings:
            key = (drift.record_type, finding.field, finding.kind.value)
            count = tally.get(key, (0,))[0]
            tally[key] = (count + 1, drift.sample, finding.expected, finding.seen)
    for (record_type, name, kind), (count, sample, expected, seen) in tally.items():
        VENDOR_DRIFT.labels(connection, record_type, name, kind).inc(count)
        stmt = dialect_insert(conn)(vendor_drift).values(
            connection=connection, record_type=record_type, field=name, kind=kind,
            count=count, expected=expected, seen=seen, api_version=api_version,
            first_seen=at, last_seen=at, sample=_sample(sample))
        conn.execute(stmt.on_conflict_do_update(
            index_elements=[vendor_drift.c.connection, vendor_drift.c.record_type,
                            vendor_drift.c.field, vendor_drift.c.kind],
            set_={"count": vendor_drift.c.count + stmt.excluded.count,
                  "seen": stmt.excluded.seen, "api_version": stmt.excluded.api_version,
                  "last_seen": stmt.excluded.last_seen, "sample": stmt.excluded.sample}))
    return sum(t[0] for t in tally.values())


def rows(conn: Connection, connection: str | None = None) -> list[dict[str, Any]]:
    """Every drift kept, newest last seen first (one connection's when named)."""
    query = select(vendor_drift).order_by(vendor_drift.c.last_seen.desc(),
                                          vendor_drift.c.connection, vendor_drift.c.field)
    if connection is not None:
        query = query.where(vendor_drift.c.connection == connection)
    return [dict(r._mapping) for r in conn.execute(query)]


def baseline(conn: Connection, connection: str) -> dict[str, dict[str, str]] | None:
    row = conn.execute(select(vendor_baselines.c.shape)
                       .where(vendor_baselines.c.connection == connection)).first()
    return None if row is None else dict(json.loads(row.shape))


def record_baseline(conn: Connection, connection: str, api_version: str,
                    shape: dict[str, dict[str, str]], *, actor: str, at: datetime) -> None:
    """Keep ``shape`` as the connection's baseline (replacing any before) and
    clear the drift kept for it, audited."""
    text = json.dumps(shape, sort_keys=True)
    stmt = dialect_insert(conn)(vendor_baselines).values(
        connection=connection, api_version=api_version, shape=text, recorded_by=actor,
        recorded_at=at)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=[vendor_baselines.c.connection],
        set_={"api_version": stmt.excluded.api_version, "shape": stmt.excluded.shape,
              "recorded_by": stmt.excluded.recorded_by,
              "recorded_at": stmt.excluded.recorded_at}))
    conn.execute(delete(vendor_drift).where(vendor_drift.c.connection == connection))
    audit.record(conn, at=at, actor=actor, action="contracts.record", subject=connection,
                 detail={"api_version": api_version,
                         "fields": {k: len(v) for k, v in shape.items()}})
