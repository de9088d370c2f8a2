"""Workers: lease aggregates with waiting events, run each event through its
flow in inbox order, and commit the outcome (state, xref, outbox commands,
exceptions, parking) in one transaction fenced on the lease.

A batch of events runs against one unit of work under a read-only snapshot,
and what it changes is then written with one statement per table in a short
write transaction (on SQLite the write lock is held only for that); only
when the store refuses that write does the batch run again one event per
savepoint, so that the refusal fails one event and never the queue."""

from __future__ import annotations

import time
import traceback
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import SQLAlchemyError

from billbridge.domain.config import Configuration
from billbridge.domain.events import CanonicalEvent
from billbridge.domain.reasons import ReasonCode
from billbridge.engine import aggregates, metrics
from billbridge.engine.batch import BatchUnit, StoreContext
from billbridge.engine.clock import Clock
from billbridge.engine.config_store import ConfigCache, active_version
from billbridge.engine.config_store import configs as configs_of
from billbridge.engine.tracing import tracer
from billbridge.flows.base import FlowRegistry
from billbridge.store.db import READ_ONLY
from billbridge.store.rows import InboxRow
from billbridge.store.tables import inbox

log = structlog.get_logger("billbridge.worker")

_READING = [inbox.c[name] for name in (
    "id", "source", "event_id", "event_type", "aggregate_key", "correlation_id", "payload",
    "config_version", "replay")]
"""What a worker reads of an event (``InboxRow``): not its timestamps, parsed for nothing."""


class LeaseLost(Exception):
    """Our lease on an aggregate ran out and may be someone else's now."""


class SimulatedCrash(Exception):
    """Raised by test hooks to stand for a process dying at that point."""


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    lease_ms: int = 30_000
    batch_size: int = 200
    aggregates_per_claim: int = 8


class Worker:
    def __init__(self, engine: Engine, flows: FlowRegistry, routes: Mapping[str, str],
                 clock: Clock, owner: str, settings: WorkerSettings | None = None,
                 configs: ConfigCache | None = None,
                 lanes: Mapping[str, int] | None = None) -> None:
        self.engine = engine
        self.flows = flows
        self.routes = dict(routes)  # role ("erp") → target name ("ledger")
        self.lanes = dict(lanes or {})  # target name → its dispatch lanes
        self.clock = clock
        self.owner = owner
        self.settings = settings or WorkerSettings()
        self.configs = configs or configs_of(engine)
        self.crash_hook: Any = None  # tests: called with (stage, key) and may raise

    # -- the loop ---------------------------------------------------------
    def run_once(self) -> int:
        """Claim some aggregates and process one batch of each; events done.

        One batch, not all that waits: a round stays short at month-end, so
        the same process's dispatcher gets its turn and other aggregates are
        not starved by one with fifty thousand events."""
        with self.engine.begin() as conn:
            keys = aggregates.claim(conn, owner=self.owner, now_ms=self.clock.ms(),
                                    lease_ms=self.settings.lease_ms,
                                    limit=self.settings.aggregates_per_claim)
        done = 0
        for key in keys:
            try:
                done += self._process_batch(key)  # releases the aggregate as it commits
            except LeaseLost:
                log.warning("lease lost", aggregate=key, owner=self.owner)
        return done

    def _process_batch(self, key: str) -> int:
        """One batch of ``key``'s events: planned under a read-only snapshot
        (no write lock while the flows run), then written, fenced on the
        lease, in one short write transaction."""
        started = time.perf_counter()
        with tracer.start_as_current_span("billbridge.process", attributes={
                "billbridge.aggregate": key}):
            with self.engine.connect().execution_options(**{READ_ONLY: True}) as reader, \
                    reader.begin():
                rows: list[InboxRow] = list(reader.execute(
                    select(*_READING).where(inbox.c.aggregate_key == key,
                                        inbox.c.status == "pending")
                    .order_by(inbox.c.id).limit(self.settings.batch_size)))
                current = active_version(reader)
                unit: BatchUnit | None = None
                if rows:
                    try:
                        unit = self._plan(reader, rows, current, key)
                    except SQLAlchemyError as exc:  # a read failed: go event by event
                        log.warning("batch could not be planned; running its events one "
                                    "by one", aggregate=key, error=repr(exc))
            with self.engine.begin() as conn:
                if not rows:
                    # Events parked or handled elsewhere: the counter must not stay
                    # positive, or the aggregate would be claimed forever.
                    self._fence(conn, key, 0, drained=True)
                    return 0
                counts = None if unit is None else self._write(conn, unit, key)
                if counts is None:
                    counts = self._run_one_by_one(conn, rows, current, key)
                self._fence(conn, key, len(rows))
                if self.crash_hook is not None:
                    self.crash_hook("commit", key)
        for (event_type, result), count in counts.items():
            metrics.EVENTS_PROCESSED.labels(event_type, result).inc(count)
        metrics.PROCESSING_SECONDS.observe(time.perf_counter() - started)
        return len(rows)

    def _fence(self, conn: Connection, key: str, processed: int, drained: bool = False) -> None:
        ok = aggregates.fence(conn, key, owner=self.owner, now_ms=self.clock.ms(),
                              lease_ms=self.settings.lease_ms, processed=processed,
                              drained=drained, release=True)
        if not ok:
            raise LeaseLost(key)

    # -- a batch of events --------------------------------------------------
    @staticmethod
    def _write(conn: Connection, unit: BatchUnit,
               key: str) -> Counter[tuple[str, str]] | None:
        """Write a planned batch in a savepoint; None when the store refused it."""
        try:
            with conn.begin_nested():
                unit.write_to(conn)
        except SQLAlchemyError as exc:
            # The store refused a write: the caller finds the event it belongs to.
            log.warning("batch refused; running its events one by one", aggregate=key,
                        error=repr(exc))
            return None
        return unit.counts

    def _plan(self, reader: Connection, rows: list[InboxRow], current: int,
              key: str) -> BatchUnit:
        """The fast path: every event's flow runs against one planned unit of
        work, whose writes go to the store later in one statement per table."""
        unit = BatchUnit(reader, self.routes, self.clock.now(), planned=True, lanes=self.lanes)
        events = [_parse(row) for row in rows]
        unit.prefetch(k for e in events if isinstance(e, CanonicalEvent)
                      for k in self.flows.reads_for(e))
        for row, event in zip(rows, events, strict=True):
            self._run_event(unit, row, event, current)
            if self.crash_hook is not None:
                self.crash_hook("event", key)
        return unit

    def _run_one_by_one(self, conn: Connection, rows: list[InboxRow], current: int,
                        key: str) -> Counter[tuple[str, str]]:
        """The slow path: each event in its own savepoint, so a write the store
        refuses fails that event only."""
        counts: Counter[tuple[str, str]] = Counter()
        for row in rows:
            unit = BatchUnit(conn, self.routes, self.clock.now(), lanes=self.lanes)
            try:
                with conn.begin_nested():
                    self._run_event(unit, row, _parse(row), current)
                    unit.flush()
            except SQLAlchemyError as exc:
                log.error("event refused by the store", event_id=row.event_id,
                          error=repr(exc))
                unit = BatchUnit(conn, self.routes, self.clock.now(), lanes=self.lanes)
                version = row.config_version or current
                unit.fail(row, version, ReasonCode.HANDLER_ERROR,
                          _failure(row.event_type, row.event_id, exc), row.event_type)
                unit.flush()
            counts += unit.counts
            if self.crash_hook is not None:
                self.crash_hook("event", key)
        return counts

    # -- one event --------------------------------------------------------
    def _run_event(self, unit: BatchUnit, row: InboxRow, event: CanonicalEvent | Exception,
                   current_version: int) -> None:
        version = row.config_version or current_version
        if isinstance(event, Exception):
            unit.fail(row, version, ReasonCode.HANDLER_ERROR,
                      _failure(row.event_type, row.event_id, event), row.event_type)
            return
        handler = self.flows.handler_for(event.type)
        if handler is None:
            unit.fail(row, version, ReasonCode.UNKNOWN_EVENT_TYPE,
                      f"no flow handles {event.type} events", event.type, "unhandled")
            return
        # Every log line while this event runs carries its correlation id.
        structlog.contextvars.bind_contextvars(correlation_id=row.correlation_id)
        try:
            config = self.configs.get(unit.conn, version) if version else Configuration()
            outcome = handler(event, StoreContext(unit, config, version, bool(row.replay)))
        except (SimulatedCrash, SQLAlchemyError):
            raise
        except Exception as exc:  # a flow bug must not stop the queue
            log.error("flow failed", event_id=event.id, type=event.type, error=repr(exc))
            unit.fail(row, version, ReasonCode.HANDLER_ERROR,
                      _failure(event.type, event.id, exc), event.type)
            return
        finally:
            structlog.contextvars.unbind_contextvars("correlation_id")
        unit.apply(row, event, outcome, version)


def _parse(row: InboxRow) -> CanonicalEvent | Exception:
    """The stored event, or why it cannot be read (it then fails on its own)."""
    if row.payload is None:
        return ValueError(f"inbox row {row.id} holds no canonical event")
    try:
        return CanonicalEvent.model_validate_json(row.payload)
    except Exception as exc:
        return exc


def _failure(event_type: str, event_id: str, exc: BaseException) -> str:
    return (f"{event_type} {event_id}: {exc!r}\n"
            f"{''.join(traceback.format_exception(exc, limit=5))}")
