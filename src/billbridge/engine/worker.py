"""Workers: lease aggregates with waiting events, run each event through its
flow in inbox order, and commit the outcome (state, xref, outbox commands,
exceptions, parking) in one transaction fenced on the lease."""

from __future__ import annotations

import json
import time
import traceback
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, bindparam, select, update

from billbridge.domain.config import Configuration
from billbridge.domain.events import CanonicalEvent
from billbridge.domain.idempotency import canonical_json
from billbridge.domain.reasons import ReasonCode
from billbridge.engine import aggregates, facts, metrics
from billbridge.engine.clock import Clock
from billbridge.engine.config_store import ConfigCache, active_version
from billbridge.engine.exception_queue import open_exception
from billbridge.engine.outbox import enqueue
from billbridge.engine.tracing import tracer
from billbridge.flows.base import FlowRegistry, Outcome
from billbridge.store.db import dialect_insert
from billbridge.store.tables import exceptions, inbox, records, xref

log = structlog.get_logger("billbridge.worker")


class LeaseLost(Exception):
    """Our lease on an aggregate ran out and may be someone else's now."""


class SimulatedCrash(Exception):
    """Raised by test hooks to stand for a process dying at that point."""


_RECORD = select(records.c.data).where(records.c.kind == bindparam("kind"),
                                       records.c.id == bindparam("id"))
_FINISH = (update(inbox).where(inbox.c.id == bindparam("row_id"))
           .values(status=bindparam("status"), waiting_on=bindparam("waiting_on"),
                   processed_at=bindparam("processed_at"), attempts=inbox.c.attempts + 1,
                   config_version=bindparam("version"), replay=False))


_UPSERTS: dict[str, Any] = {}


def _record_upsert(conn: Connection) -> Any:
    """One prebuilt upsert per dialect: building statements per row costs more
    than running them."""
    name = conn.dialect.name
    if name not in _UPSERTS:
        stmt = dialect_insert(conn)(records).values(
            kind=bindparam("kind"), id=bindparam("id"), data=bindparam("data"), version=1,
            status=bindparam("status"), correlation_id=bindparam("correlation_id"),
            config_version=bindparam("config_version"), updated_at=bindparam("updated_at"))
        _UPSERTS[name] = stmt.on_conflict_do_update(
            index_elements=[records.c.kind, records.c.id],
            set_={"data": stmt.excluded.data, "status": stmt.excluded.status,
                  "version": records.c.version + 1,
                  "correlation_id": stmt.excluded.correlation_id,
                  "config_version": stmt.excluded.config_version,
                  "updated_at": stmt.excluded.updated_at})
    return _UPSERTS[name]


@dataclass(slots=True)
class StoreContext:
    """The flows' read port over the store, inside the worker's transaction.

    Records read in a batch are cached for the batch (events of one aggregate
    keep asking for the same project and contract); the worker updates the
    cache as it writes, and drops it if an event fails half-way."""

    conn: Connection
    config: Configuration
    config_version: int
    replay: bool = False
    cache: dict[tuple[str, str], dict[str, Any] | None] = field(default_factory=dict)

    def record(self, kind: str, record_id: str) -> Mapping[str, Any] | None:
        key = (kind, record_id)
        if key not in self.cache:
            row = self.conn.execute(_RECORD, {"kind": kind, "id": record_id}).first()
            self.cache[key] = None if row is None else dict(json.loads(row.data))
        found = self.cache[key]
        return None if found is None else dict(found)

    def external_id(self, system: str, kind: str, canonical_id: str) -> str | None:
        row = self.conn.execute(select(xref.c.external_id).where(
            xref.c.system == system, xref.c.kind == kind,
            xref.c.canonical_id == canonical_id)).first()
        return None if row is None else str(row.external_id)

    def find(self, kind: str, status: str | None = None) -> list[Mapping[str, Any]]:
        query = select(records.c.data).where(records.c.kind == kind)
        if status is not None:
            query = query.where(records.c.status == status)
        return [dict(json.loads(r.data)) for r in self.conn.execute(query.order_by(records.c.id))]

    def resolve(self, system: str, kind: str, external_id: str) -> str | None:
        row = self.conn.execute(select(xref.c.canonical_id).where(
            xref.c.system == system, xref.c.kind == kind,
            xref.c.external_id == external_id)).first()
        return None if row is None else str(row.canonical_id)


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    lease_ms: int = 30_000
    batch_size: int = 200
    aggregates_per_claim: int = 8


class Worker:
    def __init__(self, engine: Engine, flows: FlowRegistry, routes: Mapping[str, str],
                 clock: Clock, owner: str, settings: WorkerSettings | None = None,
                 configs: ConfigCache | None = None) -> None:
        self.engine = engine
        self.flows = flows
        self.routes = dict(routes)  # role ("erp") → target name ("ledger")
        self.clock = clock
        self.owner = owner
        self.settings = settings or WorkerSettings()
        self.configs = configs or ConfigCache()
        self.crash_hook: Any = None  # tests: called with (stage, key) and may raise

    # -- the loop ---------------------------------------------------------
    def run_once(self) -> int:
        """Claim some aggregates and process what waits on them; events done."""
        with self.engine.begin() as conn:
            keys = aggregates.claim(conn, owner=self.owner, now_ms=self.clock.ms(),
                                    lease_ms=self.settings.lease_ms,
                                    limit=self.settings.aggregates_per_claim)
        done = 0
        for key in keys:
            try:
                done += self._drain(key)
            except LeaseLost:
                log.warning("lease lost", aggregate=key, owner=self.owner)
        return done

    def _drain(self, key: str) -> int:
        total = 0
        while True:
            processed = self._process_batch(key)
            total += processed
            if processed == 0:
                break
        with self.engine.begin() as conn:
            aggregates.release(conn, key, owner=self.owner)
        return total

    def _process_batch(self, key: str) -> int:
        started = time.perf_counter()
        with tracer.start_as_current_span("billbridge.process", attributes={
                "billbridge.aggregate": key}), self.engine.begin() as conn:
            rows = list(conn.execute(
                select(inbox).where(inbox.c.aggregate_key == key, inbox.c.status == "pending")
                .order_by(inbox.c.id).limit(self.settings.batch_size)))
            if not rows:
                # Events parked or handled elsewhere: the counter must not stay
                # positive, or the aggregate would be claimed forever.
                self._fence(conn, key, 0, drained=True)
                return 0
            current = active_version(conn)
            cache: dict[tuple[str, str], dict[str, Any] | None] = {}
            for row in rows:
                self._process_event(conn, row, current, cache)
                if self.crash_hook is not None:
                    self.crash_hook("event", key)
            self._fence(conn, key, len(rows))
            if self.crash_hook is not None:
                self.crash_hook("commit", key)
        metrics.PROCESSING_SECONDS.observe(time.perf_counter() - started)
        return len(rows)

    def _fence(self, conn: Connection, key: str, processed: int, drained: bool = False) -> None:
        ok = aggregates.fence(conn, key, owner=self.owner, now_ms=self.clock.ms(),
                              lease_ms=self.settings.lease_ms, processed=processed,
                              drained=drained)
        if not ok:
            raise LeaseLost(key)

    # -- one event --------------------------------------------------------
    def _process_event(self, conn: Connection, row: Any, current_version: int,
                       cache: dict[tuple[str, str], dict[str, Any] | None]) -> None:
        # Every log line while this event runs carries its correlation id.
        structlog.contextvars.bind_contextvars(correlation_id=row.correlation_id)
        try:
            self._run_event(conn, row, current_version, cache)
        finally:
            structlog.contextvars.unbind_contextvars("correlation_id")

    def _run_event(self, conn: Connection, row: Any, current_version: int,
                   cache: dict[tuple[str, str], dict[str, Any] | None]) -> None:
        event = CanonicalEvent.model_validate_json(row.payload)
        version = row.config_version or current_version
        handler = self.flows.handler_for(event.type)
        now = self.clock.now()
        if handler is None:
            self._finish(conn, row, "failed", version)
            open_exception(conn, reason=ReasonCode.UNKNOWN_EVENT_TYPE, stage="inbound",
                           message=f"no flow handles {event.type} events",
                           correlation_id=row.correlation_id, at=now, inbox_id=row.id,
                           raw=row.payload, config_version=version)
            metrics.EVENTS_PROCESSED.labels(event.type, "unhandled").inc()
            return
        savepoint = conn.begin_nested()
        try:
            config = self.configs.get(conn, version) if version else Configuration()
            ctx = StoreContext(conn, config, version, replay=bool(row.replay), cache=cache)
            outcome = handler(event, ctx)
            status = self._apply(conn, row, event, outcome, version, cache)
            savepoint.commit()
        except SimulatedCrash:
            raise
        except Exception as exc:  # a flow bug must not stop the queue
            savepoint.rollback()
            cache.clear()  # it may hold what the rolled-back event wrote
            log.error("flow failed", event_id=event.id, type=event.type, error=repr(exc))
            self._finish(conn, row, "failed", version)
            open_exception(conn, reason=ReasonCode.HANDLER_ERROR, stage="inbound",
                           message=f"{event.type} {event.id}: {exc!r}\n"
                                   f"{traceback.format_exc(limit=5)}",
                           correlation_id=row.correlation_id, at=now, inbox_id=row.id,
                           raw=row.payload, config_version=version)
            status = "failed"
        metrics.EVENTS_PROCESSED.labels(event.type, status).inc()

    def _finish(self, conn: Connection, row: Any, status: str, version: int,
                waiting_on: str | None = None) -> None:
        conn.execute(_FINISH, {"row_id": row.id, "status": status, "waiting_on": waiting_on,
                               "processed_at": self.clock.now(), "version": version or None})

    def _apply(self, conn: Connection, row: Any, event: CanonicalEvent, outcome: Outcome,
               version: int, cache: dict[tuple[str, str], dict[str, Any] | None]) -> str:
        now = self.clock.now()
        corr = row.correlation_id
        if outcome.park_on is not None:
            # A parked event changes nothing yet: it runs again, whole, on release.
            self._finish(conn, row, "parked", version, waiting_on=outcome.park_on)
            return "parked"
        upsert = _record_upsert(conn)
        for change in outcome.changes:
            conn.execute(upsert, {"kind": change.kind, "id": change.id,
                                  "data": canonical_json(change.data), "status": change.status,
                                  "correlation_id": corr, "config_version": version or None,
                                  "updated_at": now})
            cache[(change.kind, change.id)] = dict(change.data)
            if change.kind == "time_charge":
                facts.upsert(conn, [facts.row(change.data, change.status)])
        for binding in outcome.bindings:
            conn.execute(dialect_insert(conn)(xref).values(
                system=binding.system, kind=binding.kind, external_id=binding.external_id,
                canonical_id=binding.canonical_id, correlation_id=corr, created_at=now,
            ).on_conflict_do_nothing())
        for command in outcome.commands:
            target = self.routes.get(command.role)
            if target is None:
                # No system plays this role here (a hub with no CRM connected).
                metrics.COMMANDS_UNROUTED.labels(command.role, command.kind).inc()
                continue
            depends = None
            if command.depends_on is not None:
                depends = "{}:{}".format(*command.depends_on)
            enqueue(conn, target=target, kind=command.kind, origin=command.origin,
                    payload=command.payload, aggregate_key=row.aggregate_key,
                    correlation_id=corr, at=now, inbox_id=row.id,
                    record_kind=command.record_kind, record_id=command.record_id,
                    depends_on=depends)
        for problem in outcome.problems:
            open_exception(conn, reason=problem.reason, stage="inbound", message=problem.message,
                           correlation_id=corr, at=now, inbox_id=row.id,
                           record_kind=problem.record_kind, record_id=problem.record_id,
                           raw=row.payload, config_version=version or None)
        if outcome.releases:
            self._release(conn, outcome.releases)
        for record_kind, record_id in outcome.resolved:
            conn.execute(update(exceptions).where(
                exceptions.c.status == "open", exceptions.c.stage == "inbound",
                exceptions.c.record_kind == record_kind, exceptions.c.record_id == record_id)
                .values(status="resolved", updated_at=now, resolved_by="billbridge",
                        resolution=f"settled by {event.type} {event.id}"))
        self._finish(conn, row, "done", version)
        return "exception" if outcome.problems else "done"

    def _release(self, conn: Connection, dependencies: list[str]) -> None:
        parked = list(conn.execute(
            select(inbox.c.id, inbox.c.aggregate_key)
            .where(inbox.c.status == "parked", inbox.c.waiting_on.in_(dependencies))))
        if not parked:
            return
        conn.execute(update(inbox).where(inbox.c.id.in_([p.id for p in parked]))
                     .values(status="pending", waiting_on=None))
        aggregates.bump_pending(conn, Counter(p.aggregate_key for p in parked))

    def _target(self, role: str) -> str:
        try:
            return self.routes[role]
        except KeyError:
            raise LookupError(f"no target is configured for the {role!r} role") from None
