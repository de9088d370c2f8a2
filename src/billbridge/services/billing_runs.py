"""Billing runs as finance starts them: a preview for a period end (the
invoices the run would raise, per project, with totals per currency, and what
is held and why), then the commit, which puts the run's `billing.run` event in
the inbox under an id made from the period end, so committing the same period
again raises nothing and says so; runs listed with who, when and what they
produced. The preview runs the invoicing flow itself over a unit of work that
is never written: the same code as the commit, not a copy of its rules."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, select

from billbridge.domain.events import HUB_SOURCE, CanonicalEvent
from billbridge.domain.times import as_utc
from billbridge.engine import audit, config_store
from billbridge.engine.batch import QUEUES, StoreContext
from billbridge.engine.clock import SystemClock
from billbridge.engine.inbox import IngestStatus, ingest_many
from billbridge.errors import Conflict, NotFound
from billbridge.flows.invoicing import on_billing_run
from billbridge.services.exceptions import waiting
from billbridge.services.invoices import Shown, summaries, totals
from billbridge.store.tables import exceptions, inbox
from billbridge.store.unit_of_work import UnitOfWork

EVENT_TYPE = "billing.run"


def run_id(period_end: date) -> str:
    """The one id of the run for ``period_end``: the inbox keeps one event per id."""
    return f"run-{period_end.isoformat()}"


class Held(Shown):
    """Something a run does not bill, and why."""

    reason: str
    record: str | None
    message: str


class PlannedInvoice(Shown):
    id: str
    customer: str
    customer_name: str | None
    project: str | None
    currency: str
    lines: int
    subtotal: Decimal
    tax: Decimal
    total: Decimal
    tax_code: str | None


class RunSummary(Shown):
    id: str
    period_end: date
    project: str | None
    requested_by: str | None  # None: put in the inbox by a scheduler or `billbridge ingest`
    requested_at: datetime
    status: str  # queued, done, failed
    processed_at: datetime | None
    invoices: list[str]
    totals: dict[str, Decimal]
    problems: list[Held]


class Preview(Shown):
    period_end: date
    run: str
    config_version: int
    invoices: list[PlannedInvoice]
    totals: dict[str, Decimal]
    held: list[Held]
    committed: RunSummary | None
    """The run already committed for this period end: committing again raises nothing."""


class Committed(Shown):
    run: RunSummary
    new: bool
    message: str


def preview(engine: Engine, period_end: date, *, at: datetime) -> Preview:
    """What a run to ``period_end`` would invoice now, and what it would not."""
    rid = run_id(period_end)
    event = CanonicalEvent(type=EVENT_TYPE, source=HUB_SOURCE, id=rid, at=at,
                           data={"period_end": period_end.isoformat()})
    with engine.connect() as conn:
        version = _active(conn)
        unit = UnitOfWork(conn, at, QUEUES, planned=True)  # read from, never written
        config = config_store.configs(engine).get(conn, version)
        outcome = on_billing_run(event, StoreContext(unit, config, version))
        held = [Held(reason=p.reason.value, record=p.record_id, message=p.message)
                for p in outcome.problems]
        held += [Held(reason=w.reason, record=w.record, message=w.message)
                 for w in waiting(conn)]
        committed = _existing(conn, period_end)
        planned = [_planned(c.data, unit.record("customer", str(c.data["customer"])))
                   for c in outcome.changes if c.kind == "invoice"]
    return Preview(period_end=period_end, run=rid, config_version=version,
                   invoices=sorted(planned, key=lambda i: i.id),
                   totals=totals(planned), held=held, committed=committed)


def _planned(data: Any, customer: Mapping[str, Any] | None) -> PlannedInvoice:
    lines = data.get("lines") or []
    return PlannedInvoice(id=data["id"], customer=data["customer"],
                          customer_name=(customer or {}).get("name"), project=data.get("project"),
                          currency=data["currency"], lines=len(lines),
                          subtotal=Decimal(data["subtotal"]), tax=Decimal(data["tax"]),
                          total=Decimal(data["total"]),
                          tax_code=(data.get("tax_rule") or {}).get("tax_code"))


def _active(conn: Connection) -> int:
    version = config_store.active_version(conn)
    if not version:
        raise Conflict("no configuration is active, so nothing can be priced or taxed: "
                       "activate one first (`billbridge serve --config FOLDER`)",
                       code="NO_ACTIVE_CONFIG")
    return version


def commit(engine: Engine, period_end: date, *, actor: str, at: datetime) -> Committed:
    """Put the run for ``period_end`` in the inbox (a worker raises its
    invoices), audited; once only: a period already run is said so, unchanged."""
    rid = run_id(period_end)
    with engine.begin() as conn:
        _active(conn)
        existing = _existing(conn, period_end)
        if existing is None:
            [result] = ingest_many(conn, [{
                "type": EVENT_TYPE, "id": rid, "at": at.isoformat(),
                "data": {"period_end": period_end.isoformat(), "requested_by": actor}}],
                source=HUB_SOURCE, clock=SystemClock())
            if result.status is IngestStatus.ACCEPTED:
                audit.record(conn, at=at, actor=actor, action="billing.run", subject=rid,
                             detail={"period_end": period_end.isoformat()},
                             correlation_id=result.correlation_id)
        found = _existing(conn, period_end)
    if found is None:  # the store refused the event: nothing was committed
        raise NotFound(f"billing run {rid} was not stored; commit it again")
    if existing is not None:
        return Committed(run=found, new=False, message=(
            f"the run to {period_end} was committed already ({found.id}, by "
            f"{found.requested_by or 'the scheduler'} at {found.requested_at:%Y-%m-%d %H:%M} "
            f"UTC, {found.status}): nothing new is raised"))
    return Committed(run=found, new=True, message=(
        f"billing run {found.id} committed: a worker raises its invoices; "
        "`billbridge billing runs` shows what it produced"))


def runs(conn: Connection) -> list[RunSummary]:
    """Every billing run, newest first, with the invoices it raised."""
    raised: dict[str, list[Any]] = defaultdict(list)
    for invoice in summaries(conn):
        if invoice.billing_run:
            raised[invoice.billing_run].append(invoice)
    found = []
    for row in conn.execute(select(inbox.c.event_id, inbox.c.payload, inbox.c.status,
                                   inbox.c.received_at, inbox.c.processed_at,
                                   inbox.c.correlation_id)
                            .where(inbox.c.source == HUB_SOURCE,
                                   inbox.c.event_type == EVENT_TYPE)
                            .order_by(inbox.c.id.desc())):
        data = json.loads(row.payload or "{}").get("data", {})
        problems = [Held(reason=e.reason, record=e.record_id, message=e.message)
                    for e in conn.execute(select(exceptions.c.reason, exceptions.c.record_id,
                                                 exceptions.c.message)
                                          .where(exceptions.c.correlation_id ==
                                                 row.correlation_id,
                                                 exceptions.c.status == "open"))]
        made = raised.get(row.event_id, [])
        found.append(RunSummary(
            id=row.event_id, period_end=data["period_end"], project=data.get("project"),
            requested_by=data.get("requested_by"), requested_at=as_utc(row.received_at),
            status="queued" if row.status == "pending" else row.status,
            processed_at=as_utc(row.processed_at), invoices=[i.id for i in made],
            totals=totals(made), problems=problems))
    return found


def show(conn: Connection, rid: str) -> RunSummary:
    found = next((r for r in runs(conn) if r.id == rid), None)
    if found is None:
        raise NotFound(f"there is no billing run {rid!r}: `billbridge billing runs` lists them")
    return found


def _existing(conn: Connection, period_end: date) -> RunSummary | None:
    """The run already made for the whole of ``period_end``, by any id."""
    return next((r for r in runs(conn) if r.period_end == period_end and r.project is None),
                None)
