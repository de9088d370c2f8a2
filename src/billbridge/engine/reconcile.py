"""Reconciliation: approved time as the time tool last told us, charges in the
hub and the postings the ERP holds live (read from the ERP itself), compared
per charge and per project; every difference listed with hours, amount,
currency and the command that fixes it."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, exists, literal, select

from billbridge.connectors.base import LedgerReader, LivePosting
from billbridge.domain.billing import Rejection, price_entry
from billbridge.domain.records import Contract, Project, TimeEntry
from billbridge.domain.times import as_utc
from billbridge.engine.config_store import active_version, configs
from billbridge.store.tables import exceptions, inbox, outbox, records

if TYPE_CHECKING:
    from billbridge.engine.hub import Hub

LIVE = ("posted", "invoiced")


@dataclass(frozen=True)
class Finding:
    kind: str
    project: str
    record: str
    hours: Decimal | None
    amount: Decimal | None
    currency: str | None
    detail: str
    fix: str = ""  # what to do about it, a command where there is one

    def as_json(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in self.__dict__.items()}


def _records(conn: Connection, kind: str, *conditions: Any) -> dict[str, dict[str, Any]]:
    rows = conn.execute(select(records.c.id, records.c.data, records.c.status)
                        .where(records.c.kind == kind, *conditions))
    return {r.id: {**json.loads(r.data), "_status": r.status} for r in rows}


def _posted(record_id: Any, kind: str) -> Any:
    """An acknowledged ERP command of ``kind`` exists for the charge."""
    return exists().where(outbox.c.record_kind == "time_charge",
                          outbox.c.record_id == record_id, outbox.c.kind == kind,
                          outbox.c.status == "done")


def reconcile(conn: Connection, *, period_end: date, now: datetime,
              parked_days: int = 7) -> list[Finding]:
    """The hub's side alone, its ERP column being what the ERP acknowledged
    (the outbox): what a check that cannot reach the ERP can say. Each check
    asks the database for just the rows that differ, so the cost follows the
    number of differences, not the size of the store."""
    return _hub_side(conn, period_end, now, parked_days) + _orphans(conn)


def _hub_side(conn: Connection, period_end: date, now: datetime,
              parked_days: int) -> list[Finding]:
    """The findings that do not depend on what the ERP holds."""
    findings: list[Finding] = []
    findings += _unbilled(conn, period_end)
    findings += unpriced(conn)
    findings += unmapped(conn)
    findings += _parked(conn, now, parked_days)
    findings += _unposted(conn)
    findings += _stale_prices(conn)
    return findings


def _unbilled(conn: Connection, period_end: date) -> list[Finding]:
    charges = _records(conn, "time_charge", records.c.status == "posted")
    return [Finding("unbilled approved time", c["project"], c["time_entry"],
                    Decimal(c["hours"]), Decimal(c["amount"]), c["currency"],
                    f"worked {c['work_date']}, posted, not invoiced by {period_end}")
            for c in charges.values()
            if c.get("billable") and date.fromisoformat(c["work_date"]) <= period_end]


def unpriced(conn: Connection) -> list[Finding]:
    charge = records.alias("charge")
    live_charge = exists().where(charge.c.kind == "time_charge",
                                 charge.c.id == literal("tc_") + records.c.id,
                                 charge.c.status.in_(LIVE))
    entries = _records(conn, "time_entry", records.c.status == "approved", ~live_charge)
    held = {r.record_id: r for r in conn.execute(
        select(exceptions.c.record_id, exceptions.c.reason, exceptions.c.message)
        .where(exceptions.c.status == "open", exceptions.c.record_kind == "time_entry",
               exceptions.c.record_id.in_(list(entries))))} if entries else {}
    out = []
    for entry_id, entry in entries.items():
        reason = held.get(entry_id)
        kind = ("time on a closed project" if reason and reason.reason == "PROJECT_NOT_ACTIVE"
                else "unpriced approved time")
        out.append(Finding(kind, entry["project"], entry_id, Decimal(entry["hours"]), None, None,
                           f"{reason.reason}: {reason.message}" if reason
                           else "approved, no charge and no open exception"))
    return out


UNMAPPED_KIND = "approved hours not priced (user not mapped)"


def unmapped(conn: Connection) -> list[Finding]:
    """Approved time from time-tool users the connection maps to no worker
    (any time source: engine.inbox keeps each as an ``unmapped_time`` record),
    while its exception is open and the entry has not come through since."""
    entry = records.alias("entry")
    arrived = exists().where(entry.c.kind == "time_entry", entry.c.id == records.c.id)
    still_open = exists().where(exceptions.c.record_kind == "time_entry",
                                exceptions.c.record_id == records.c.id,
                                exceptions.c.status == "open")
    found = _records(conn, "unmapped_time", records.c.status == "approved", ~arrived,
                     still_open)
    return [Finding(UNMAPPED_KIND, str(p.get("project") or "?"), entry_id,
                    Decimal(p["hours"]) if p.get("hours") else None, None, None,
                    f"{p['connection']} user {p['user']}"
                    + (f" ({p['name']})" if p.get("name") else "")
                    + f" logged it on {p.get('work_date') or '?'}; no worker is mapped",
                    f"map user {p['user']} to a worker under workers in the "
                    f"{p['connection']} connection, then sync it again")
            for entry_id, p in sorted(found.items())]


def _parked(conn: Connection, now: datetime, days: int) -> list[Finding]:
    out = []
    for row in conn.execute(select(inbox.c.payload, inbox.c.waiting_on, inbox.c.received_at)
                            .where(inbox.c.status == "parked")):
        data = json.loads(row.payload)["data"]
        age = now - as_utc(row.received_at)
        kind = f"parked work older than {days} days" if age > timedelta(days=days) \
            else "time on an unknown project"
        out.append(Finding(kind, str(data.get("project")), str(data.get("id")),
                           Decimal(data["hours"]) if "hours" in data else None, None, None,
                           f"waiting on {row.waiting_on} for {age.days} day(s)"))
    return out


def _unposted(conn: Connection) -> list[Finding]:
    unposted = _records(conn, "time_charge", records.c.status.in_(LIVE),
                        ~_posted(records.c.id, "time_charge.post"))
    return [Finding("charge not posted to the ERP", c["project"], charge_id,
                    Decimal(c["hours"]), Decimal(c["amount"]), c["currency"],
                    "no acknowledged posting yet",
                    "billbridge exceptions list (a refused posting waits there for a retry)")
            for charge_id, c in unposted.items()]


def _orphans(conn: Connection) -> list[Finding]:
    orphans = _records(conn, "time_charge", records.c.status.not_in(LIVE),
                       _posted(records.c.id, "time_charge.post"),
                       ~_posted(records.c.id, "time_charge.reverse"))
    return [Finding("ERP posting with no source", c["project"], charge_id,
                    Decimal(c["hours"]), Decimal(c["amount"]), c["currency"],
                    "the hub reversed it; the ERP still has it",
                    "reverse the posting in the ERP by hand")
            for charge_id, c in orphans.items()]


def _strip(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "_status"}


def _stale_prices(conn: Connection) -> list[Finding]:
    version = active_version(conn)
    if not version:
        return []
    charges = _records(conn, "time_charge", records.c.status == "posted",
                       records.c.config_version < version)
    if not charges:
        return []
    stale = records.alias("stale")
    entries = _records(conn, "time_entry", exists().where(
        stale.c.kind == "time_charge", stale.c.id == literal("tc_") + records.c.id,
        stale.c.status == "posted", stale.c.config_version < version))
    config = configs(conn.engine).get(conn, version)
    projects, contracts = _records(conn, "project"), _records(conn, "contract")
    out = []
    for charge in charges.values():
        if charge["_status"] != "posted" or int(charge.get("config_version") or 0) >= version:
            continue
        entry, project = entries.get(charge["time_entry"]), projects.get(charge["project"])
        if entry is None or project is None:
            continue
        contract = contracts.get(str(project.get("contract")))
        priced = price_entry(TimeEntry.model_validate(_strip(entry)),
                             Project.model_validate(_strip(project)),
                             Contract.model_validate(_strip(contract)) if contract else None,
                             config, version)
        if not isinstance(priced, Rejection) and priced.amount != Decimal(charge["amount"]):
            out.append(Finding("stale rate card", charge["project"], charge["time_entry"],
                               Decimal(charge["hours"]),
                               priced.amount - Decimal(charge["amount"]), charge["currency"],
                               f"priced {charge['amount']} under config "
                               f"v{charge['config_version']}; v{version} gives {priced.amount}"))
    return out


# -- three ways: approved time, the hub's charges, the ERP's live postings ----------------
@dataclass(frozen=True)
class ErpLedger:
    """What one ERP answered: its live labour postings, or why it could not
    be read."""

    name: str
    postings: tuple[LivePosting, ...] = ()
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"erp": self.name, "error": self.error,
                "postings": [{"charge": p.charge, "external_id": p.external_id,
                              "project": p.project, "hours": str(p.hours),
                              "amount": str(p.amount), "currency": p.currency}
                             for p in self.postings]}


@dataclass
class ProjectColumns:
    """One project's three columns: approved hours, the hub's live charges
    and the ERP's live postings (None when no ERP could be read)."""

    project: str
    approved_hours: Decimal = Decimal(0)
    hub_hours: Decimal = Decimal(0)
    hub_amounts: dict[str, Decimal] = field(default_factory=dict)
    erp_hours: Decimal | None = None
    erp_amounts: dict[str, Decimal] | None = None

    def as_json(self) -> dict[str, Any]:
        def money(amounts: dict[str, Decimal] | None) -> dict[str, str] | None:
            return None if amounts is None else {c: str(a) for c, a in sorted(amounts.items())}
        return {"project": self.project, "approved_hours": str(self.approved_hours),
                "hub_hours": str(self.hub_hours), "hub_amounts": money(self.hub_amounts),
                "erp_hours": None if self.erp_hours is None else str(self.erp_hours),
                "erp_amounts": money(self.erp_amounts)}


@dataclass(frozen=True)
class Reconciliation:
    findings: list[Finding]
    erps: list[ErpLedger]
    projects: list[ProjectColumns]

    def totals(self) -> dict[str, dict[str, Decimal]]:
        """Per currency, the hub's and the ERP's amounts summed over projects."""
        out: dict[str, dict[str, Decimal]] = {}
        for row in self.projects:
            for column, amounts in (("hub", row.hub_amounts), ("erp", row.erp_amounts or {})):
                for currency, amount in amounts.items():
                    per = out.setdefault(currency, {"hub": Decimal(0), "erp": Decimal(0)})
                    per[column] += amount
        return out

    def as_json(self) -> dict[str, Any]:
        return {"findings": [f.as_json() for f in self.findings],
                "erps": [e.as_json() for e in self.erps],
                "projects": [p.as_json() for p in self.projects],
                "totals": {c: {k: str(v) for k, v in t.items()}
                           for c, t in sorted(self.totals().items())}}


def read_ledgers(ledgers: Mapping[str, LedgerReader]) -> list[ErpLedger]:
    """Each ERP's live postings; an ERP that cannot be read says why in one line."""
    out = []
    for name, reader in sorted(ledgers.items()):
        try:
            out.append(ErpLedger(name, tuple(reader.live_postings())))
        except Exception as exc:  # whatever an outside system does, it is one line here
            out.append(ErpLedger(name, error=str(exc) or type(exc).__name__))
    return out


def reconcile_three_ways(conn: Connection, *, period_end: date, now: datetime,
                         ledgers: Mapping[str, LedgerReader], parked_days: int = 7
                         ) -> Reconciliation:
    """Approved time vs the hub's charges vs the ERPs' live postings. The
    ERP's column is read from each ERP, not from the hub's belief; an ERP that
    cannot be read is named with its reason and the hub's findings still come."""
    findings = _hub_side(conn, period_end, now, parked_days)
    erps = read_ledgers(ledgers)
    charges = _records(conn, "time_charge")
    for erp in erps:
        if erp.error is None:
            findings += _compare(conn, erp, charges)
    return Reconciliation(findings, erps, _columns(conn, charges, erps))


def _routed(conn: Connection, target: str) -> dict[str, bool]:
    """Charges whose posting went to ``target``: charge → acknowledged."""
    out: dict[str, bool] = {}
    for row in conn.execute(select(outbox.c.record_id, outbox.c.status).where(
            outbox.c.target == target, outbox.c.kind == "time_charge.post",
            outbox.c.record_kind == "time_charge")):
        out[row.record_id] = out.get(row.record_id, False) or row.status == "done"
    return out


def _compare(conn: Connection, erp: ErpLedger,
             charges: Mapping[str, dict[str, Any]]) -> list[Finding]:
    routed = _routed(conn, erp.name)
    held: dict[str, list[LivePosting]] = {}
    for posting in erp.postings:
        held.setdefault(posting.charge, []).append(posting)
    out: list[Finding] = []
    for charge_id in sorted(set(routed) | set(held)):
        charge = charges.get(charge_id)
        live = charge is not None and charge["_status"] in LIVE and charge_id in routed
        postings = held.get(charge_id, [])
        if not live:
            out += [_finding("ERP posting with no source", p, charge, erp.name,
                             f"{erp.name} holds {p.external_id} live; the hub "
                             f"{'reversed the charge' if charge else 'has no such charge'}",
                             f"reverse posting {p.external_id} in {erp.name} by hand")
                    for p in postings]
            continue
        assert charge is not None
        want = (Decimal(charge["hours"]), Decimal(charge["amount"]), charge["currency"])
        if not postings:
            if routed[charge_id]:  # unacknowledged ones are 'charge not posted' already
                out.append(Finding(
                    "ERP posting missing", charge["project"], charge_id, *want,
                    f"the hub holds it posted to {erp.name}, which has no live posting of it",
                    f"find who deleted or voided it in {erp.name} (billbridge lineage "
                    f"{charge_id} names the posting); restore it there or post it by hand"))
            continue
        matching = [p for p in postings if (p.hours, p.amount, p.currency) == want]
        kept = matching[0] if matching else None
        extras = [p for p in postings if p is not kept]
        if kept is None and len(postings) == 1:
            p = postings[0]
            out.append(Finding(
                "amount differs", charge["project"], charge_id, p.hours - want[0],
                p.amount - want[1], p.currency,
                f"{erp.name} {p.external_id}: {p.hours} h {p.amount} {p.currency}; "
                f"hub: {want[0]} h {want[1]} {want[2]}",
                f"reverse posting {p.external_id} in {erp.name} by hand and post "
                f"{want[0]} h {want[1]} {want[2]} for {charge_id}"))
        elif extras:
            out += [_finding("twin postings", p, charge, erp.name,
                             f"{len(postings)} live postings of one charge in {erp.name}: "
                             f"{', '.join(q.external_id for q in postings)}",
                             f"reverse posting {p.external_id} in {erp.name} by hand")
                    for p in extras]
    return out


def _finding(kind: str, posting: LivePosting, charge: dict[str, Any] | None, erp: str,
             detail: str, fix: str) -> Finding:
    project = str(charge["project"]) if charge else (posting.project or "")
    return Finding(kind, project, posting.charge, posting.hours, posting.amount,
                   posting.currency, detail, fix)


def _columns(conn: Connection, charges: Mapping[str, dict[str, Any]],
             erps: list[ErpLedger]) -> list[ProjectColumns]:
    rows: dict[str, ProjectColumns] = {}

    def row(project: Any) -> ProjectColumns:
        return rows.setdefault(str(project), ProjectColumns(str(project)))

    for entry in _records(conn, "time_entry", records.c.status == "approved").values():
        row(entry["project"]).approved_hours += Decimal(entry["hours"])
    for charge in charges.values():
        if charge["_status"] in LIVE:
            r = row(charge["project"])
            r.hub_hours += Decimal(charge["hours"])
            r.hub_amounts[charge["currency"]] = \
                r.hub_amounts.get(charge["currency"], Decimal(0)) + Decimal(charge["amount"])
    if any(e.error is None for e in erps):
        for r in rows.values():
            r.erp_hours, r.erp_amounts = Decimal(0), {}
        for erp in erps:
            for p in erp.postings:
                known = charges.get(p.charge)
                r = row(known["project"] if known else p.project or "")
                if r.erp_amounts is None:
                    r.erp_hours, r.erp_amounts = Decimal(0), {}
                r.erp_hours = (r.erp_hours or Decimal(0)) + p.hours
                r.erp_amounts[p.currency] = r.erp_amounts.get(p.currency, Decimal(0)) + p.amount
    return sorted(rows.values(), key=lambda r: r.project)


class _Unreadable:
    """An ERP target with no ledger read: reconcile names it and goes on."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def live_postings(self, charge_ids: Sequence[str] | None = None) -> list[LivePosting]:
        raise ValueError(self.reason)


def ledgers_of(targets: Mapping[str, Any], erps: Iterable[str] = ()) -> dict[str, LedgerReader]:
    """The targets that can say what they hold live, by name; each of
    ``erps`` (the targets ERP commands are routed to) is among them even when
    it cannot, so reconcile says it could not read it."""
    out: dict[str, LedgerReader] = {name: target for name, target in targets.items()
                                    if callable(getattr(target, "live_postings", None))}
    for name in erps:
        if name not in out:
            out[name] = _Unreadable("not configured as a target" if name not in targets
                                    else "its connector has no ledger read")
    return out


def erp_ledgers(hub: Hub) -> dict[str, LedgerReader]:
    """The ledgers of a hub's targets, its ERP route among them."""
    return ledgers_of(hub.targets, [hub.settings.routes["erp"]]
                      if "erp" in hub.settings.routes else [])
