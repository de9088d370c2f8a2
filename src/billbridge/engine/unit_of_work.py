"""The worker's unit of work: what a batch of events changes, held in memory
and written with one statement per table instead of a dozen per event.

Flows read records through a per-batch cache, filled for the whole batch with
one query per record kind; a read the cache cannot answer (a search, the
xref) first writes what is held, so every flow sees the store exactly as if
each event before it had been written on its own. Writes whose order matters
against each other (releasing parked events, settling exceptions) flush what
came before them, for the same reason.

A unit can also be *planned*: the flows run against a read-only snapshot and
nothing is written until ``write_to`` replays the held writes, in the same
order and with the same boundaries, on a connection that may write. The
worker plans a batch outside the store's write lock (SQLite has one, held
from BEGIN IMMEDIATE to commit) and takes the lock only to write. Reads that
would first write what is held (a search, the xref) instead see the store
with the unit's own pending changes laid over it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, select, update

from billbridge.domain.config import Configuration
from billbridge.domain.events import CanonicalEvent
from billbridge.domain.reasons import ReasonCode
from billbridge.engine import aggregates, facts, metrics
from billbridge.engine.exception_queue import open_exception
from billbridge.engine.outbox import NewCommand, enqueue_many, lane_of
from billbridge.flows.base import Outcome
from billbridge.store import binder
from billbridge.store.bulk import Bulk
from billbridge.store.db import dialect_insert
from billbridge.store.tables import exceptions, inbox, records

CHUNK = 5000  # ids per IN list: well inside SQLite's and PostgreSQL's parameter limits

_READ = (select(records.c.kind, records.c.id, records.c.data)
         .where(records.c.kind == bindparam("kind"),
                records.c.id.in_(bindparam("ids", expanding=True))))
_FINISH = Bulk(lambda _: update(inbox).where(inbox.c.id == bindparam("row_id")).values(
    status=bindparam("status"), waiting_on=bindparam("waiting_on"),
    processed_at=bindparam("processed_at"), attempts=inbox.c.attempts + 1,
    config_version=bindparam("version"), replay=False))
_OPEN_FOR = (select(exceptions.c.id, exceptions.c.record_kind, exceptions.c.record_id)
             .where(exceptions.c.status == "open", exceptions.c.stage == "inbound",
                    exceptions.c.record_id.in_(bindparam("ids", expanding=True))))
_ANY_OPEN = (select(exceptions.c.id)
             .where(exceptions.c.status == "open", exceptions.c.stage == "inbound").limit(1))
_SETTLE = (update(exceptions).where(exceptions.c.id == bindparam("exc_id"))
           .values(status="resolved", updated_at=bindparam("at"), resolved_by="billbridge",
                   resolution=bindparam("resolution")))


def _upsert(conn: Connection) -> Any:
    stmt = dialect_insert(conn)(records).values(
        kind=bindparam("kind"), id=bindparam("id"), data=bindparam("data"),
        version=bindparam("version"), status=bindparam("status"),
        correlation_id=bindparam("correlation_id"),
        config_version=bindparam("config_version"), updated_at=bindparam("updated_at"))
    # ``version`` counts changes: a record changed n times in a batch moves on n.
    return stmt.on_conflict_do_update(
        index_elements=[records.c.kind, records.c.id],
        set_={"data": stmt.excluded.data, "status": stmt.excluded.status,
              "version": records.c.version + stmt.excluded.version,
              "correlation_id": stmt.excluded.correlation_id,
              "config_version": stmt.excluded.config_version,
              "updated_at": stmt.excluded.updated_at})


_UPSERT = Bulk(_upsert)


def _encode(data: Mapping[str, Any]) -> str:
    """A record as stored: JSON with sorted keys (the form readers and diffs see)."""
    return orjson.dumps(data, default=str, option=orjson.OPT_SORT_KEYS |
                        orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME).decode()


@dataclass
class _Writes:
    """What a stretch of events changes, between two points where order matters."""

    records: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)
    bindings: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    commands: list[NewCommand] = field(default_factory=list)
    exceptions: list[dict[str, Any]] = field(default_factory=list)
    settled: dict[tuple[str, str], str] = field(default_factory=dict)
    finished: list[dict[str, Any]] = field(default_factory=list)


class UnitOfWork:
    """Pending writes of a batch of events, in the worker's transaction (or,
    ``planned``, held until ``write_to``)."""

    def __init__(self, conn: Connection, routes: Mapping[str, str], now: datetime,
                 planned: bool = False, lanes: Mapping[str, int] | None = None) -> None:
        self.conn = conn  # where reads go; writes too, unless planned
        self.routes = routes  # role ("erp") → target name ("ledger")
        self.lanes = lanes or {}  # target name → its dispatch lanes (1 when not named)
        self.now = now
        self.planned = planned
        self.cache: dict[tuple[str, str], dict[str, Any] | None] = {}
        self.counts: Counter[tuple[str, str]] = Counter()  # (event type, result)
        self._w = _Writes()
        self._plan: list[_Writes | list[str]] = []  # planned: writes, and releases between
        # Planned: what this unit changed, for reads that must see it.
        self._changed: dict[tuple[str, str], tuple[Mapping[str, Any], str | None]] = {}
        self._bound: dict[tuple[str, str, str], str] = {}  # (system, kind, canonical) → ext
        self._bound_back: dict[tuple[str, str, str], str] = {}  # (system, kind, ext) → can.

    # -- reads ---------------------------------------------------------------
    def prefetch(self, keys: Iterable[tuple[str, str]]) -> None:
        """Load the records named (kind, id) with one query per kind; what is
        not found is remembered as absent."""
        wanted: dict[str, set[str]] = {}
        for kind, record_id in keys:
            if (kind, record_id) not in self.cache:
                wanted.setdefault(kind, set()).add(record_id)
        for kind, ids in wanted.items():
            ordered = sorted(ids)
            for start in range(0, len(ordered), CHUNK):
                chunk = ordered[start:start + CHUNK]
                for key in chunk:
                    self.cache[(kind, key)] = None
                for row in self.conn.execute(_READ, {"kind": kind, "ids": chunk}):
                    self.cache[(kind, row.id)] = orjson.loads(row.data)

    def record(self, kind: str, record_id: str) -> Mapping[str, Any] | None:
        key = (kind, record_id)
        if key not in self.cache:
            self.prefetch([key])
        found = self.cache[key]
        return None if found is None else dict(found)

    def find(self, kind: str, status: str | None = None) -> list[dict[str, Any]]:
        """Every record of ``kind`` (with ``status``), by id, as this unit leaves them."""
        self._before_read()
        query = select(records.c.id, records.c.data).where(records.c.kind == kind)
        if status is not None:
            query = query.where(records.c.status == status)
        found = {r.id: orjson.loads(r.data) for r in self.conn.execute(query)}
        for (changed_kind, record_id), (data, changed_status) in self._changed.items():
            if changed_kind != kind:
                continue
            if status is None or changed_status == status:
                found[record_id] = dict(data)
            else:
                found.pop(record_id, None)
        return [dict(found[i]) for i in sorted(found)]

    # One side of a binding from the other: the store's (a binding, once made,
    # stays), else one this unit holds.
    def external_id(self, system: str, kind: str, canonical_id: str) -> str | None:
        self._before_read()
        return (binder.to_external(self.conn, system, kind, canonical_id)
                or self._bound.get((system, kind, canonical_id)))

    def resolve(self, system: str, kind: str, external_id: str) -> str | None:
        self._before_read()
        return (binder.to_internal(self.conn, system, kind, external_id)
                or self._bound_back.get((system, kind, external_id)))

    def _before_read(self) -> None:
        """A search must see what the unit holds: written first, or (planned)
        laid over the store by the reader itself, which needs no new stretch."""
        if not self.planned:
            self.flush()

    # -- writes --------------------------------------------------------------
    def apply(self, row: Any, event: CanonicalEvent, outcome: Outcome, version: int) -> None:
        """Hold what one event's outcome changes; count how it ended."""
        if outcome.park_on is not None:
            # A parked event changes nothing yet: it runs again, whole, on release.
            self.finish(row, "parked", version, waiting_on=outcome.park_on)
            self.counts[(event.type, "parked")] += 1
            return
        corr = row.correlation_id
        w = self._w
        for change in outcome.changes:
            key = (change.kind, change.id)
            held = w.records.get(key)
            w.records[key] = {
                "kind": change.kind, "id": change.id, "data": change.data,
                "version": 1 + (held["version"] if held else 0), "status": change.status,
                "correlation_id": corr, "config_version": version or None}
            self.cache[key] = dict(change.data)
            if self.planned:
                self._changed[key] = (change.data, change.status)
            if change.kind == "time_charge":
                w.facts[change.id] = facts.row(change.data, change.status)
        for binding in outcome.bindings:
            w.bindings.setdefault(
                (binding.system, binding.kind, binding.external_id),
                {"system": binding.system, "kind": binding.kind,
                 "external_id": binding.external_id, "canonical_id": binding.canonical_id,
                 "correlation_id": corr})
            if self.planned:
                self._bound.setdefault((binding.system, binding.kind, binding.canonical_id),
                                       binding.external_id)
                self._bound_back.setdefault((binding.system, binding.kind,
                                             binding.external_id), binding.canonical_id)
        for command in outcome.commands:
            target = self.routes.get(command.role)
            if target is None:
                # No system plays this role here (a hub with no CRM connected).
                metrics.COMMANDS_UNROUTED.labels(command.role, command.kind).inc()
                continue
            w.commands.append(NewCommand(
                target=target, kind=command.kind, origin=command.origin,
                payload=command.payload, aggregate_key=row.aggregate_key, correlation_id=corr,
                inbox_id=row.id, record_kind=command.record_kind, record_id=command.record_id,
                depends_on=("{}:{}".format(*command.depends_on)
                            if command.depends_on is not None else None),
                lane=lane_of(row.aggregate_key, self.lanes.get(target, 1))))
        for problem in outcome.problems:
            w.exceptions.append(dict(
                reason=problem.reason, stage="inbound", message=problem.message,
                correlation_id=corr, at=self.now, inbox_id=row.id,
                record_kind=problem.record_kind, record_id=problem.record_id,
                raw=row.payload, config_version=version or None))
        if outcome.releases:
            self.flush()  # events parked before this one must be parked when released
            if self.planned:
                self._plan.append(list(outcome.releases))
            else:
                _release(self.conn, outcome.releases)
        if outcome.resolved:
            if self._w.exceptions:
                self.flush()  # settle only what was opened before this event
            for record in outcome.resolved:
                self._w.settled.setdefault(record, f"settled by {event.type} {event.id}")
        self.finish(row, "done", version)
        self.counts[(event.type, "exception" if outcome.problems else "done")] += 1

    def fail(self, row: Any, version: int, reason: ReasonCode, message: str,
             event_type: str, result: str = "failed") -> None:
        """The event ends failed with an exception that keeps its payload."""
        self.finish(row, "failed", version)
        self._w.exceptions.append(dict(
            reason=reason, stage="inbound", message=message, correlation_id=row.correlation_id,
            at=self.now, inbox_id=row.id, raw=row.payload, config_version=version or None))
        self.counts[(event_type, result)] += 1

    def finish(self, row: Any, status: str, version: int, waiting_on: str | None = None) -> None:
        self._w.finished.append({"row_id": row.id, "status": status, "waiting_on": waiting_on,
                                 "version": version or None})

    def flush(self) -> None:
        """Write everything held, one statement per table (planned: close the
        stretch, to be written in this order later)."""
        held, self._w = self._w, _Writes()
        if self.planned:
            self._plan.append(held)
        else:
            _write(self.conn, held, self.now)

    def write_to(self, conn: Connection) -> None:
        """Planned: write everything held, in order, on ``conn``."""
        self.flush()
        for step in self._plan:
            if isinstance(step, _Writes):
                _write(conn, step, self.now)
            else:
                _release(conn, step)
        self._plan.clear()


def _write(conn: Connection, w: _Writes, now: datetime) -> None:
    _UPSERT.run(conn, [{**r, "data": _encode(r["data"])} for r in w.records.values()],
                updated_at=now)
    facts.upsert(conn, list(w.facts.values()))
    binder.bind(conn, list(w.bindings.values()), at=now)
    if w.commands:
        enqueue_many(conn, w.commands, at=now)
    if w.settled:
        _settle(conn, w.settled, now)
    for problem in w.exceptions:
        open_exception(conn, **problem)
    _FINISH.run(conn, w.finished, processed_at=now)


def _settle(conn: Connection, settled: Mapping[tuple[str, str], str], now: datetime) -> None:
    # Every posted entry settles its own earlier exceptions, if any; nearly
    # always there are none open, and one indexed probe says so instead of an
    # IN list of the whole batch's ids.
    if conn.execute(_ANY_OPEN).first() is None:
        return
    ids = sorted({record_id for _, record_id in settled})
    found = []
    for start in range(0, len(ids), CHUNK):
        found += [r for r in conn.execute(_OPEN_FOR, {"ids": ids[start:start + CHUNK]})
                  if (r.record_kind, r.record_id) in settled]
    if found:
        conn.execute(_SETTLE, [
            {"exc_id": r.id, "at": now, "resolution": settled[(r.record_kind, r.record_id)]}
            for r in found])


def _release(conn: Connection, dependencies: list[str]) -> None:
    parked = list(conn.execute(
        select(inbox.c.id, inbox.c.aggregate_key)
        .where(inbox.c.status == "parked", inbox.c.waiting_on.in_(dependencies))))
    if not parked:
        return
    conn.execute(update(inbox).where(inbox.c.id.in_([p.id for p in parked]))
                 .values(status="pending", waiting_on=None))
    aggregates.bump_pending(conn, Counter(p.aggregate_key for p in parked))


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
