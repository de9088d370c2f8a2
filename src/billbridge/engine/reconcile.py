"""Reconciliation: approved time as the time tool last told us, charges in the
hub and postings the ERP acknowledged, compared per project; every difference
listed with hours and amounts."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

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


def _records(conn: Connection, kind: str) -> dict[str, dict[str, Any]]:
    rows = conn.execute(select(records.c.id, records.c.data, records.c.status)
                        .where(records.c.kind == kind))
    return {r.id: {**json.loads(r.data), "_status": r.status} for r in rows}


def reconcile(conn: Connection, *, period_end: date, now: datetime,
              parked_days: int = 7) -> list[Finding]:
    findings: list[Finding] = []
    entries = _records(conn, "time_entry")
    charges = _records(conn, "time_charge")
    findings += _unbilled(charges.values(), period_end)
    findings += _unpriced(conn, entries, charges)
    findings += _parked(conn, now, parked_days)
    findings += _unposted_and_orphans(conn, charges)
    findings += _stale_prices(conn, entries, charges)
    return findings


def _unbilled(charges: Iterable[dict[str, Any]], period_end: date) -> list[Finding]:
    return [Finding("unbilled approved time", c["project"], c["time_entry"],
                    Decimal(c["hours"]), Decimal(c["amount"]), c["currency"],
                    f"worked {c['work_date']}, posted, not invoiced by {period_end}")
            for c in charges
            if c["_status"] == "posted" and c.get("billable")
            and date.fromisoformat(c["work_date"]) <= period_end]


def _unpriced(conn: Connection, entries: dict[str, dict[str, Any]],
              charges: dict[str, dict[str, Any]]) -> list[Finding]:
    held = {r.record_id: r for r in conn.execute(
        select(exceptions.c.record_id, exceptions.c.reason, exceptions.c.message)
        .where(exceptions.c.status == "open", exceptions.c.record_kind == "time_entry"))}
    out = []
    for entry_id, entry in entries.items():
        charge = charges.get(f"tc_{entry_id}")
        if entry["_status"] != "approved" or (charge and charge["_status"] in LIVE):
            continue
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


def _unposted_and_orphans(conn: Connection,
                          charges: dict[str, dict[str, Any]]) -> list[Finding]:
    out = []
    posted: dict[str, int] = {}
    for row in conn.execute(select(outbox.c.record_id, outbox.c.kind, outbox.c.status,
                                   outbox.c.external_id)
                            .where(outbox.c.record_kind == "time_charge",
                                   outbox.c.status == "done")):
        posted[row.record_id] = posted.get(row.record_id, 0) + \
            (1 if row.kind == "time_charge.post" else -1)
    for charge_id, charge in charges.items():
        net = posted.get(charge_id, 0)
        live = charge["_status"] in LIVE
        if live and net < 1:
            out.append(Finding("charge not posted to the ERP", charge["project"], charge_id,
                               Decimal(charge["hours"]), Decimal(charge["amount"]),
                               charge["currency"], "no acknowledged posting yet"))
        elif not live and net > 0:
            out.append(Finding("ERP posting with no source", charge["project"], charge_id,
                               Decimal(charge["hours"]), Decimal(charge["amount"]),
                               charge["currency"], "the hub reversed it; the ERP still has it"))
    return out


def _strip(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "_status"}


def _stale_prices(conn: Connection, entries: dict[str, dict[str, Any]],
                  charges: dict[str, dict[str, Any]]) -> list[Finding]:
    version = active_version(conn)
    if not version:
        return []
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
