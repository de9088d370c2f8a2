"""The unit of work: what a batch of events changes, held in memory and
written with one statement per table instead of a dozen per event.

Reads go through a per-batch cache, filled for the whole batch with one query
per record kind; a read the cache cannot answer (a search, the xref) first
writes what is held, so every reader sees the store exactly as if each event
before it had been written on its own. Writes whose order matters against
each other (releasing parked events, settling exceptions) flush what came
before them, for the same reason.

A unit can also be *planned*: the flows run against a read-only snapshot and
nothing is written until ``write_to`` replays the held writes, in the same
order and with the same boundaries, on a connection that may write. The
worker plans a batch outside the store's write lock (SQLite has one, held
from BEGIN IMMEDIATE to commit) and takes the lock only to write. Reads that
would first write what is held (a search, the xref) instead see the store
with the unit's own pending changes laid over it.

What the unit writes beyond records, bindings and the inbox (the outbox, the
exception queue, parked events, charge facts) goes through ``Queues``, which
the engine provides: those writes also count and announce what they write."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import orjson
from sqlalchemy import Connection, bindparam, select, update

from billbridge.store import binder
from billbridge.store.bulk import Bulk
from billbridge.store.db import dialect_insert
from billbridge.store.rows import NewCommand
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


class Queues(Protocol):
    """The engine's writers a unit hands part of its writes to."""

    def charge_facts(self, conn: Connection, rows: list[dict[str, Any]]) -> None: ...
    def enqueue(self, conn: Connection, commands: Sequence[NewCommand], at: datetime) -> None: ...
    def open_exception(self, conn: Connection, problem: Mapping[str, Any]) -> None: ...
    def release(self, conn: Connection, dependencies: Sequence[str]) -> None: ...


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
    """Pending writes of a batch of events, in the caller's transaction (or,
    ``planned``, held until ``write_to``)."""

    def __init__(self, conn: Connection, now: datetime, queues: Queues,
                 planned: bool = False) -> None:
        self.conn = conn  # where reads go; writes too, unless planned
        self.now = now
        self.queues = queues
        self.planned = planned
        self.cache: dict[tuple[str, str], dict[str, Any] | None] = {}
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

    # -- writes held ---------------------------------------------------------
    def hold_record(self, kind: str, record_id: str, data: Mapping[str, Any],
                    status: str | None, correlation_id: str, config_version: int | None) -> None:
        key = (kind, record_id)
        held = self._w.records.get(key)
        self._w.records[key] = {
            "kind": kind, "id": record_id, "data": data,
            "version": 1 + (held["version"] if held else 0), "status": status,
            "correlation_id": correlation_id, "config_version": config_version}
        self.cache[key] = dict(data)
        if self.planned:
            self._changed[key] = (data, status)

    def hold_fact(self, charge_id: str, fact: dict[str, Any]) -> None:
        """A time charge's figures for the charge facts (written with the charge)."""
        self._w.facts[charge_id] = fact

    def hold_binding(self, system: str, kind: str, external_id: str, canonical_id: str,
                     correlation_id: str) -> None:
        self._w.bindings.setdefault((system, kind, external_id), {
            "system": system, "kind": kind, "external_id": external_id,
            "canonical_id": canonical_id, "correlation_id": correlation_id})
        if self.planned:
            self._bound.setdefault((system, kind, canonical_id), external_id)
            self._bound_back.setdefault((system, kind, external_id), canonical_id)

    def hold_command(self, command: NewCommand) -> None:
        self._w.commands.append(command)

    def hold_exception(self, **problem: Any) -> None:
        """An exception to open (``Queues.open_exception``'s fields)."""
        self._w.exceptions.append(problem)

    def release(self, dependencies: Sequence[str]) -> None:
        """Put back in the queue the events parked on ``dependencies``."""
        self.flush()  # events parked before this one must be parked when released
        if self.planned:
            self._plan.append(list(dependencies))
        else:
            self.queues.release(self.conn, list(dependencies))

    def settle(self, records_settled: Iterable[tuple[str, str]], resolution: str) -> None:
        """Resolve the open inbound exceptions of these (kind, id) records."""
        if self._w.exceptions:
            self.flush()  # settle only what was opened before this event
        for record in records_settled:
            self._w.settled.setdefault(record, resolution)

    def finish(self, inbox_id: int, status: str, version: int,
               waiting_on: str | None = None) -> None:
        """The inbox event ends ``status`` under configuration ``version``."""
        self._w.finished.append({"row_id": inbox_id, "status": status, "waiting_on": waiting_on,
                                 "version": version or None})

    # -- writing -------------------------------------------------------------
    def flush(self) -> None:
        """Write everything held, one statement per table (planned: close the
        stretch, to be written in this order later)."""
        held, self._w = self._w, _Writes()
        if self.planned:
            self._plan.append(held)
        else:
            self._write(self.conn, held)

    def write_to(self, conn: Connection) -> None:
        """Planned: write everything held, in order, on ``conn``."""
        self.flush()
        for step in self._plan:
            if isinstance(step, _Writes):
                self._write(conn, step)
            else:
                self.queues.release(conn, step)
        self._plan.clear()

    def _write(self, conn: Connection, w: _Writes) -> None:
        now = self.now
        _UPSERT.run(conn, [{**r, "data": _encode(r["data"])} for r in w.records.values()],
                    updated_at=now)
        self.queues.charge_facts(conn, list(w.facts.values()))
        binder.bind(conn, list(w.bindings.values()), at=now)
        if w.commands:
            self.queues.enqueue(conn, w.commands, now)
        if w.settled:
            _settle(conn, w.settled, now)
        for problem in w.exceptions:
            self.queues.open_exception(conn, problem)
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
