"""A batch of events against one unit of work (``store/unit_of_work.py``):
what each flow's outcome holds for writing (records, charge facts, bindings,
commands routed to their targets and lanes, exceptions, releases, parks),
how each event ended, and the flows' read port over the unit."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from billbridge.domain.config import Configuration
from billbridge.domain.events import CanonicalEvent
from billbridge.domain.reasons import ReasonCode
from billbridge.engine import aggregates, facts, metrics
from billbridge.engine.exception_queue import open_exception
from billbridge.engine.outbox import enqueue_many, lane_of
from billbridge.flows.base import Outcome
from billbridge.store.rows import InboxRow, NewCommand
from billbridge.store.tables import inbox
from billbridge.store.unit_of_work import UnitOfWork


class EngineQueues:
    """The engine's writers behind a unit of work (``store.unit_of_work.Queues``)."""

    def charge_facts(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        facts.upsert(conn, rows)

    def enqueue(self, conn: Connection, commands: Sequence[NewCommand], at: datetime) -> None:
        enqueue_many(conn, commands, at=at)

    def open_exception(self, conn: Connection, problem: Mapping[str, Any]) -> None:
        open_exception(conn, **problem)

    def release(self, conn: Connection, dependencies: Sequence[str]) -> None:
        parked = list(conn.execute(
            select(inbox.c.id, inbox.c.aggregate_key)
            .where(inbox.c.status == "parked", inbox.c.waiting_on.in_(dependencies))))
        if not parked:
            return
        conn.execute(update(inbox).where(inbox.c.id.in_([p.id for p in parked]))
                     .values(status="pending", waiting_on=None))
        aggregates.bump_pending(conn, Counter(p.aggregate_key for p in parked))


QUEUES = EngineQueues()


class BatchUnit(UnitOfWork):
    """A unit of work that takes flows' outcomes, for a worker's batch."""

    def __init__(self, conn: Connection, routes: Mapping[str, str], now: datetime,
                 planned: bool = False, lanes: Mapping[str, int] | None = None) -> None:
        super().__init__(conn, now, QUEUES, planned=planned)
        self.routes = routes  # role ("erp") → target name ("ledger")
        self.lanes = lanes or {}  # target name → its dispatch lanes (1 when not named)
        self.counts: Counter[tuple[str, str]] = Counter()  # (event type, result)

    def apply(self, row: InboxRow, event: CanonicalEvent, outcome: Outcome,
              version: int) -> None:
        """Hold what one event's outcome changes; count how it ended."""
        if outcome.park_on is not None:
            # A parked event changes nothing yet: it runs again, whole, on release.
            self.finish(row.id, "parked", version, waiting_on=outcome.park_on)
            self.counts[(event.type, "parked")] += 1
            return
        corr = row.correlation_id
        for change in outcome.changes:
            self.hold_record(change.kind, change.id, change.data, change.status, corr,
                             version or None)
            if change.kind == "time_charge":
                self.hold_fact(change.id, facts.row(change.data, change.status))
        for binding in outcome.bindings:
            self.hold_binding(binding.system, binding.kind, binding.external_id,
                              binding.canonical_id, corr)
        for command in outcome.commands:
            target = self.routes.get(command.role)
            if target is None:
                # No system plays this role here (a hub with no CRM connected).
                metrics.COMMANDS_UNROUTED.labels(command.role, command.kind).inc()
                continue
            self.hold_command(NewCommand(
                target=target, kind=command.kind, origin=command.origin,
                payload=command.payload, aggregate_key=row.aggregate_key, correlation_id=corr,
                inbox_id=row.id, record_kind=command.record_kind, record_id=command.record_id,
                depends_on=("{}:{}".format(*command.depends_on)
                            if command.depends_on is not None else None),
                lane=lane_of(row.aggregate_key, self.lanes.get(target, 1))))
        for problem in outcome.problems:
            self.hold_exception(
                reason=problem.reason, stage="inbound", message=problem.message,
                correlation_id=corr, at=self.now, inbox_id=row.id,
                record_kind=problem.record_kind, record_id=problem.record_id,
                raw=row.payload, config_version=version or None)
        if outcome.releases:
            self.release(outcome.releases)
        if outcome.resolved:
            self.settle(outcome.resolved, f"settled by {event.type} {event.id}")
        self.finish(row.id, "done", version)
        self.counts[(event.type, "exception" if outcome.problems else "done")] += 1

    def fail(self, row: InboxRow, version: int, reason: ReasonCode, message: str,
             event_type: str, result: str = "failed") -> None:
        """The event ends failed with an exception that keeps its payload."""
        self.finish(row.id, "failed", version)
        self.hold_exception(
            reason=reason, stage="inbound", message=message, correlation_id=row.correlation_id,
            at=self.now, inbox_id=row.id, raw=row.payload, config_version=version or None)
        self.counts[(event_type, result)] += 1


class StoreContext:
    """The flows' read port (``FlowContext``) over a unit of work."""

    __slots__ = ("config", "config_version", "replay", "unit")

    def __init__(self, unit: UnitOfWork, config: Configuration, config_version: int,
                 replay: bool = False) -> None:
        self.unit = unit
        self.config = config
        self.config_version = config_version
        self.replay = replay

    def record(self, kind: str, record_id: str) -> Mapping[str, Any] | None:
        return self.unit.record(kind, record_id)

    def external_id(self, system: str, kind: str, canonical_id: str) -> str | None:
        return self.unit.external_id(system, kind, canonical_id)

    def find(self, kind: str, status: str | None = None) -> list[Mapping[str, Any]]:
        return list(self.unit.find(kind, status))

    def resolve(self, system: str, kind: str, external_id: str) -> str | None:
        return self.unit.resolve(system, kind, external_id)
