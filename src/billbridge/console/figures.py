"""The figures behind the leakage, activation and executive pages, computed
from the one dataset (records, invoices, charges) so that every page agrees."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from billbridge.engine.config_store import ConfigCache, active_version
from billbridge.store.tables import records


def _all(conn: Connection, kind: str) -> list[dict[str, Any]]:
    rows = conn.execute(select(records.c.data, records.c.status).where(records.c.kind == kind))
    return [{**json.loads(r.data), "_status": r.status} for r in rows]


@dataclass
class ProjectFigures:
    project: str
    currency: str = "USD"
    contract_value: Decimal = Decimal(0)
    billed: Decimal = Decimal(0)
    collected: Decimal = Decimal(0)
    wip: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)
    wip_hours: Decimal = Decimal(0)
    oldest_wip: str | None = None

    @property
    def backlog(self) -> Decimal:
        return max(Decimal(0), self.contract_value - self.billed - self.wip)

    @property
    def margin(self) -> Decimal:
        return self.billed + self.wip - self.cost

    @property
    def margin_pct(self) -> str:
        revenue = self.billed + self.wip
        return f"{(100 * self.margin / revenue):.0f} %" if revenue else "—"


@dataclass
class Executive:
    projects: list[ProjectFigures] = field(default_factory=list)
    dso_days: str = "—"

    def total(self, name: str) -> Decimal:
        return sum((getattr(p, name) for p in self.projects), Decimal(0))


def executive(conn: Connection, today: date) -> Executive:
    figures: dict[str, ProjectFigures] = {}

    def fig(code: str) -> ProjectFigures:
        return figures.setdefault(code, ProjectFigures(code))

    config_version = active_version(conn)
    config = ConfigCache().get(conn, config_version) if config_version else None
    cost_rates = {w.id: w.cost_rate for w in config.workers} if config else {}
    for activation in _all(conn, "activation"):
        f = fig(str(activation["project"]))
        f.contract_value = Decimal(str(activation.get("contract_value") or 0))
        f.currency = str(activation.get("currency") or f.currency)
    for charge in _all(conn, "time_charge"):
        if charge["_status"] not in ("posted", "invoiced"):
            continue
        f = fig(str(charge["project"]))
        f.cost += Decimal(str(charge["hours"])) * cost_rates.get(charge["worker"], Decimal(0))
        if charge["_status"] == "posted" and charge.get("billable"):
            f.wip += Decimal(str(charge["amount"]))
            f.wip_hours += Decimal(str(charge["hours"]))
            f.oldest_wip = min(filter(None, [f.oldest_wip, str(charge["work_date"])]))
    outstanding, billed_total = Decimal(0), Decimal(0)
    for invoice in _all(conn, "invoice"):
        f = fig(str(invoice.get("project") or invoice["customer"]))
        total = Decimal(str(invoice["total"]))
        f.billed += total
        billed_total += total
        if invoice["_status"] == "paid":
            f.collected += total
        elif invoice["_status"] != "void":
            outstanding += total
    result = Executive(sorted(figures.values(), key=lambda f: f.project))
    if billed_total:
        # DSO over a 90-day window: receivables / billed x 90.
        result.dso_days = f"{(outstanding / billed_total * 90):.0f}"
    return result


def activation_lags(conn: Connection) -> list[tuple[str, float]]:
    """(project, hours from closed-won to the ERP project id written back)."""
    lags = []
    for activation in _all(conn, "activation"):
        if activation.get("activated_at") and activation.get("closed_won_at"):
            won = datetime.fromisoformat(str(activation["closed_won_at"]))
            done = datetime.fromisoformat(str(activation["activated_at"]))
            lags.append((str(activation["project"]), (done - won).total_seconds() / 3600))
    return sorted(lags, key=lambda x: x[1])


def lag_summary(lags: list[tuple[str, float]]) -> dict[str, str]:
    values = [v for _, v in lags]
    if not values:
        return {"count": "0", "median": "—", "max": "—"}
    return {"count": str(len(values)), "median": f"{statistics.median(values):.1f} h",
            "max": f"{max(values):.1f} h"}


def leakage(findings: list[Any]) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = defaultdict(list)
    for f in findings:
        grouped[f.kind].append(f)
    return dict(grouped)
