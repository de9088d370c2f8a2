"""Reconciliation: approved time as the time tool last told us, charges in the
hub and postings the ERP acknowledged, compared per project; every difference
listed with hours and amounts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, exists, literal, select

from billbridge.domain.billing import Rejection, price_entry
from billbridge.domain.records import Contract, Project, TimeEntry
from billbridge.engine.config_store import ConfigCache, active_version
from billbridge.store.tables import exceptions, inbox, outbox, records

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
    """Each check asks the database for just the rows that differ, so the
    cost follows the number of differences, not the size of the store."""
    findings: list[Finding] = []
    findings += _unbilled(conn, period_end)
    findings += unpriced(conn)
    findings += _parked(conn, now, parked_days)
    findings += _unposted_and_orphans(conn)
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


def _parked(conn: Connection, now: datetime, days: int) -> list[Finding]:
    out = []
    for row in conn.execute(select(inbox.c.payload, inbox.c.waiting_on, inbox.c.received_at)
                            .where(inbox.c.status == "parked")):
        data = json.loads(row.payload)["data"]
        received = row.received_at if row.received_at.tzinfo else \
            row.received_at.replace(tzinfo=now.tzinfo)
        age = now - received
        kind = f"parked work older than {days} days" if age > timedelta(days=days) \
            else "time on an unknown project"
        out.append(Finding(kind, str(data.get("project")), str(data.get("id")),
                           Decimal(data["hours"]) if "hours" in data else None, None, None,
                           f"waiting on {row.waiting_on} for {age.days} day(s)"))
    return out


def _unposted_and_orphans(conn: Connection) -> list[Finding]:
    unposted = _records(conn, "time_charge", records.c.status.in_(LIVE),
                        ~_posted(records.c.id, "time_charge.post"))
    orphans = _records(conn, "time_charge", records.c.status.not_in(LIVE),
                       _posted(records.c.id, "time_charge.post"),
                       ~_posted(records.c.id, "time_charge.reverse"))
    out = [Finding("charge not posted to the ERP", c["project"], charge_id,
                   Decimal(c["hours"]), Decimal(c["amount"]), c["currency"],
                   "no acknowledged posting yet") for charge_id, c in unposted.items()]
    out += [Finding("ERP posting with no source", c["project"], charge_id,
                    Decimal(c["hours"]), Decimal(c["amount"]), c["currency"],
                    "the hub reversed it; the ERP still has it")
            for charge_id, c in orphans.items()]
    return out


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
    cache = ConfigCache()
    config = cache.get(conn, version)
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
