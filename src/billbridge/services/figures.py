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

from sqlalchemy import Connection, func, select

from billbridge.engine.config_store import active_version, configs
from billbridge.engine.facts import from_e4
from billbridge.services import invoices
from billbridge.store import queries
from billbridge.store.tables import charge_facts, records


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

    def totals(self, name: str) -> dict[str, Decimal]:
        """The figure summed per currency: USD and EUR are never added together."""
        sums: dict[str, Decimal] = {}
        for p in self.projects:
            sums[p.currency] = sums.get(p.currency, Decimal(0)) + getattr(p, name)
        return dict(sorted(sums.items()))

    def share(self, project: ProjectFigures) -> int:
        """The project's billed and WIP as a percentage of all in its currency."""
        revenue = [p.billed + p.wip for p in self.projects if p.currency == project.currency]
        whole = sum(revenue, Decimal(0))
        return min(100, round(100 * (project.billed + project.wip) / whole)) if whole else 0


def executive(conn: Connection, today: date) -> Executive:
    figures: dict[str, ProjectFigures] = {}

    def fig(code: str) -> ProjectFigures:
        return figures.setdefault(code, ProjectFigures(code))

    config_version = active_version(conn)
    config = configs(conn.engine).get(conn, config_version) if config_version else None
    cost_rates = {w.id: w.cost_rate for w in config.workers} if config else {}
    for activation in _all(conn, "activation"):
        f = fig(str(activation["project"]))
        f.contract_value = Decimal(str(activation.get("contract_value") or 0))
        f.currency = str(activation.get("currency") or f.currency)
    live = charge_facts.c.status.in_(("posted", "invoiced"))
    for project, worker, hours in conn.execute(
            select(charge_facts.c.project, charge_facts.c.worker,
                   func.sum(charge_facts.c.hours_e4))
            .where(live).group_by(charge_facts.c.project, charge_facts.c.worker)):
        fig(project).cost += from_e4(hours) * cost_rates.get(worker, Decimal(0))
    for project, amount, hours, oldest in conn.execute(
            select(charge_facts.c.project, func.sum(charge_facts.c.amount_e4),
                   func.sum(charge_facts.c.hours_e4), func.min(charge_facts.c.work_date))
            .where(charge_facts.c.status == "posted", charge_facts.c.billable.is_(True))
            .group_by(charge_facts.c.project)):
        f = fig(project)
        f.wip, f.wip_hours, f.oldest_wip = from_e4(amount), from_e4(hours), str(oldest)
    outstanding, billed_total = Decimal(0), Decimal(0)
    for invoice in invoices.recorded(conn):
        f = fig(str(invoice.get("project") or invoice["customer"]))
        total = Decimal(str(invoice["total"]))
        f.billed += total
        billed_total += total
        if invoice.get("status") == "paid":
            f.collected += total
        elif invoice.get("status") != "void":
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


AGES = ((30, "0-30 days"), (60, "31-60 days"), (90, "61-90 days"), (10**6, "over 90 days"))


@dataclass
class Leakage:
    unbilled: list[tuple[str, str, Decimal, Decimal, str]] = field(default_factory=list)
    """(project, age bucket, hours, amount, currency) of approved, posted,
    uninvoiced time."""
    unbilled_totals: dict[str, Decimal] = field(default_factory=dict)
    """The unbilled amount per currency (never one sum across currencies)."""
    held: list[tuple[str, int, Decimal]] = field(default_factory=list)
    """(reason, entries, hours) of approved time that is not priced."""
    unmapped: list[tuple[str, str, int, Decimal, str]] = field(default_factory=list)
    """(connection, user, entries, hours, the mapping to add) of approved time
    from users the connection does not map."""
    parked: int = 0
    stale_charges: int = 0
    stale_amount: Decimal = Decimal(0)


def leakage(conn: Connection, today: date) -> Leakage:
    from billbridge.engine.reconcile import unmapped, unpriced

    result = Leakage()
    buckets: dict[tuple[str, str, str], list[Decimal]] = defaultdict(
        lambda: [Decimal(0), Decimal(0)])
    for project, day, currency, hours, amount in conn.execute(
            select(charge_facts.c.project, charge_facts.c.work_date, charge_facts.c.currency,
                   func.sum(charge_facts.c.hours_e4), func.sum(charge_facts.c.amount_e4))
            .where(charge_facts.c.status == "posted", charge_facts.c.billable.is_(True))
            .group_by(charge_facts.c.project, charge_facts.c.work_date,
                      charge_facts.c.currency)):
        age = (today - day).days
        label = next(name for limit, name in AGES if age <= limit)
        bucket = buckets[(project, label, currency)]
        bucket[0] += from_e4(hours)
        bucket[1] += from_e4(amount)
        result.unbilled_totals[currency] = (result.unbilled_totals.get(currency, Decimal(0))
                                            + from_e4(amount))
    order = [name for _, name in AGES]
    result.unbilled = [(p, a, h, m, c) for (p, a, c), (h, m) in
                       sorted(buckets.items(), key=lambda x: (x[0][0], order.index(x[0][1]),
                                                              x[0][2]))]
    held: dict[str, list[Any]] = defaultdict(lambda: [0, Decimal(0)])
    for finding in unpriced(conn):
        reason = finding.detail.split(":")[0]
        held[reason][0] += 1
        held[reason][1] += finding.hours or 0
    people: dict[tuple[str, str], list[Any]] = defaultdict(lambda: [0, Decimal(0), ""])
    for finding in unmapped(conn):
        words = finding.detail.split(" ")  # "<connection> user <id> …"
        person = people[(words[0], words[2])]
        person[0] += 1
        person[1] += finding.hours or 0
        person[2] = finding.fix
        held["user not mapped"][0] += 1
        held["user not mapped"][1] += finding.hours or 0
    result.held = [(r, n, h) for r, (n, h) in sorted(held.items())]
    result.unmapped = [(c, u, n, h, fix) for (c, u), (n, h, fix) in sorted(people.items())]
    result.parked = queries.inbox_by_status(conn, "parked").get("parked", 0)
    version = active_version(conn)
    stale = conn.execute(select(func.count(), func.sum(charge_facts.c.amount_e4)).where(
        charge_facts.c.status == "posted", charge_facts.c.config_version < version)).one()
    result.stale_charges, result.stale_amount = int(stale[0] or 0), from_e4(stale[1])
    return result
