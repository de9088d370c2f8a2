"""The billing rules of DOMAIN.md as pure functions: checking and pricing a
time entry, and building invoices from charges. Hand-worked figures in
tests/unit/test_billing.py and the scenario files."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from billbridge.domain.config import Configuration, TaxRule
from billbridge.domain.money import line_amount, round_money
from billbridge.domain.rating import rate_for
from billbridge.domain.reasons import ReasonCode
from billbridge.domain.records import (
    BillingModel,
    Contract,
    Customer,
    Invoice,
    InvoiceLine,
    Project,
    ProjectStatus,
    TimeCharge,
    TimeEntry,
    Worker,
)


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: ReasonCode
    message: str


def charge_id(entry_id: str) -> str:
    """The id of the TimeCharge that prices a time entry (one per entry)."""
    return f"tc_{entry_id}"


def _period_locked(config: Configuration, entity: str, day: date) -> bool:
    return any(p.legal_entity == entity and p.start <= day <= p.end
               for p in config.closed_periods)


def price_entry(entry: TimeEntry, project: Project, contract: Contract | None,
                config: Configuration, config_version: int, *,
                committed: Decimal = Decimal(0)) -> TimeCharge | Rejection:
    """Check an approved entry in DOMAIN.md's order and price it.

    ``committed`` is what the contract has billed or has pending already; a
    T&M entry that would take it past the budget cap is held whole.
    """
    if project.status is not ProjectStatus.ACTIVE:
        return Rejection(ReasonCode.PROJECT_NOT_ACTIVE,
                         f"project {project.code} is {project.status.value}, not active")
    task = project.task(entry.task) if entry.task else None
    if entry.task and project.tasks and task is None:
        return Rejection(ReasonCode.TASK_UNKNOWN,
                         f"task {entry.task!r} is not a task of project {project.code}")
    if contract is not None and (entry.work_date < contract.start or
                                 (contract.end is not None and entry.work_date > contract.end)):
        return Rejection(ReasonCode.OUTSIDE_CONTRACT_PERIOD,
                         f"work date {entry.work_date} is outside contract {contract.id} "
                         f"({contract.start} to {contract.end or 'open'})")
    model = contract.billing_model if contract else BillingModel.TIME_AND_MATERIALS
    # Retainer hours are cost lines too: the retainer and its overage are billed
    # per period by the billing run, not per entry.
    billable = entry.billable and (task is None or task.billable) and \
        model is BillingModel.TIME_AND_MATERIALS
    worker = config.worker(entry.worker)
    card_id = (contract.rate_card if contract else None) or config.default_rate_card
    if billable:
        rate = rate_for(config, card_id, entry.worker, entry.work_date) if card_id else None
        if rate is None:
            return Rejection(ReasonCode.NO_RATE,
                             f"no rate for worker {entry.worker} on {entry.work_date} in rate "
                             f"card {card_id!r}: add the worker's role or an override to the "
                             "card in force")
        hourly, currency = rate.hourly, rate.currency
        card, card_version = rate.card.id, rate.card.version
    else:
        # Cost line (fixed fee, milestone, non-billable work): hours at cost rate.
        if worker is None:
            return Rejection(ReasonCode.NO_RATE,
                             f"worker {entry.worker} is not configured, so no cost rate")
        cost = cost_rate(config, worker, contract, entry.work_date)
        if isinstance(cost, Rejection):
            return cost
        hourly, currency = cost
        card, card_version = None, None
    amount = line_amount(entry.hours, hourly, currency).amount
    if billable and contract is not None and contract.budget_cap is not None and \
            committed + amount > contract.budget_cap:
        return Rejection(ReasonCode.BUDGET_EXCEEDED,
                         f"{amount} {currency} would take contract {contract.id} to "
                         f"{committed + amount}, past its cap of {contract.budget_cap}")
    entity = (contract.legal_entity if contract else None) or (worker.legal_entity
                                                               if worker else None)
    if entity and _period_locked(config, entity, entry.work_date):
        return Rejection(ReasonCode.PERIOD_LOCKED,
                         f"{entry.work_date} falls in a closed period of {entity}")
    # Every figure comes from validated records and configuration or from the
    # rounding above: the charge is assembled, not validated again.
    return TimeCharge.model_construct(
        id=charge_id(entry.id), time_entry=entry.id, project=project.code, task=entry.task,
        worker=entry.worker, work_date=entry.work_date, hours=entry.hours, rate=hourly,
        amount=amount, currency=currency, billable=billable, tax_code=None, rate_card=card,
        rate_card_version=card_version, config_version=config_version,
        source_version=entry.source_version)


RATE_PLACES = Decimal("0.0001")


def cost_rate(config: Configuration, worker: Worker, contract: Contract | None,
              day: date) -> tuple[Decimal, str] | Rejection:
    """A worker's hourly cost in the currency of the legal entity that books
    the project (the contract's, else the worker's own), converted at the
    governed rate of the work date."""
    entity_code = (contract.legal_entity if contract else None) or worker.legal_entity
    entity = config.legal_entity(entity_code)
    books_in = entity.functional_currency if entity else worker.currency
    rate = fx_rate(config, day, worker.currency, books_in)
    if rate is None:
        return Rejection(ReasonCode.NO_FX_RATE,
                         f"no {worker.currency} to {books_in} rate on or before {day} to book "
                         f"{worker.id}'s cost in {entity_code}")
    if rate == 1:
        return worker.cost_rate, books_in
    # The line is rounded once, from the converted rate kept to four places.
    return (worker.cost_rate * rate).quantize(RATE_PLACES), books_in


def tax_rule_for(config: Configuration, entity_country: str, customer: Customer
                 ) -> TaxRule | None:
    """The most specific rule for (entity country, customer country, has tax id)."""
    has_tax_id = bool(customer.tax_id)
    candidates = [r for r in config.tax_rules
                  if r.entity_country == entity_country
                  and r.customer_country == customer.billing_country
                  and r.customer_has_tax_id in (None, has_tax_id)]
    # A rule that names the tax-id condition beats one that does not.
    return max(candidates, key=lambda r: r.customer_has_tax_id is not None, default=None)


def time_line(charge: TimeCharge, tax_code: str) -> InvoiceLine:
    return InvoiceLine(description=f"{charge.work_date} {charge.worker} {charge.hours} h",
                       quantity=charge.hours, unit_price=charge.rate, amount=charge.amount,
                       tax_code=tax_code, source=charge.id)


def time_lines(charges: Sequence[TimeCharge], detail: str, tax_code: str,
               task_names: dict[str, str] | None = None) -> list[InvoiceLine]:
    """Invoice lines for time at the customer's level of detail: one per entry,
    or summed per task, per worker or per project at each rate. A summed line
    is hours x rate rounded once, as any line is."""
    ordered = sorted(charges, key=lambda c: (c.work_date, c.id))
    if detail == "entry":
        return [time_line(c, tax_code) for c in ordered]
    groups: dict[tuple[str, str, Decimal], list[TimeCharge]] = {}
    for charge in ordered:
        if detail == "task":
            label = (task_names or {}).get(charge.time_entry, "time")
        elif detail == "worker":
            label = charge.worker
        else:
            label = "Professional services"
        groups.setdefault((charge.project, label, charge.rate), []).append(charge)
    lines = []
    for (project, label, rate), members in groups.items():
        hours = sum((c.hours for c in members), Decimal(0))
        currency = members[0].currency
        lines.append(InvoiceLine(description=f"{project} {label}: {hours} h at {rate}",
                                 quantity=hours, unit_price=rate,
                                 amount=line_amount(hours, rate, currency).amount,
                                 tax_code=tax_code, source=",".join(c.id for c in members)))
    return lines


def retainer_lines(contract: Contract, period: str, hours: Decimal,
                   tax_code: str) -> list[InvoiceLine]:
    """The retainer fee for ``period`` and any overage past its included hours."""
    terms = contract.retainer
    if terms is None:
        return []
    fee = round_money(terms.amount, contract.currency)
    lines = [fixed_line(f"Retainer {period}", fee, tax_code, f"retainer:{contract.id}:{period}")]
    overage = hours - terms.included_hours
    if overage > 0:
        lines.append(InvoiceLine(
            description=f"Overage {period}: {overage} h beyond {terms.included_hours} h",
            quantity=overage, unit_price=terms.overage_rate,
            amount=line_amount(overage, terms.overage_rate, contract.currency).amount,
            tax_code=tax_code, source=f"overage:{contract.id}:{period}"))
    return lines


def fixed_line(description: str, amount: Decimal, tax_code: str, source: str) -> InvoiceLine:
    """A milestone or an expense: one unit at its (already rounded) amount."""
    return InvoiceLine(description=description, quantity=Decimal(1), unit_price=amount,
                       amount=amount, tax_code=tax_code, source=source)


def build_invoice(invoice_id: str, customer: Customer, project: str | None, currency: str,
                  lines: Sequence[InvoiceLine], rule: TaxRule, config_version: int,
                  po_number: str | None = None, invoice_date: date | None = None,
                  period_end: date | None = None) -> Invoice:
    """Each line was rounded once; tax is on the rounded subtotal; the total
    is the sum of rounded figures."""
    subtotal = round_money(sum((line.amount for line in lines), Decimal(0)), currency)
    tax = round_money(subtotal * rule.rate / Decimal(100), currency)  # rate is a percentage
    return Invoice(id=invoice_id, customer=customer.id, project=project, currency=currency,
                   lines=tuple(lines), subtotal=subtotal, tax=tax, total=subtotal + tax,
                   po_number=po_number, config_version=config_version,
                   invoice_date=invoice_date, period_end=period_end)


def fx_rate(config: Configuration, day: date, source: str, target: str) -> Decimal | None:
    """The latest governed rate on or before ``day`` (1 for the same currency)."""
    if source == target:
        return Decimal(1)
    rates = [r for r in config.fx_rates
             if r.from_currency == source and r.to_currency == target and r.date <= day]
    return max(rates, key=lambda r: r.date).rate if rates else None


def price_expense(amount: Decimal, currency: str, markup_pct: Decimal, day: date,
                  contract_currency: str, config: Configuration) -> Decimal | Rejection:
    """Billable expense: amount × (1 + markup %), converted at the rate of the
    expense date, rounded once."""
    rate = fx_rate(config, day, currency, contract_currency)
    if rate is None:
        return Rejection(ReasonCode.NO_FX_RATE,
                         f"no {currency} to {contract_currency} rate on or before {day}")
    return round_money(amount * (1 + markup_pct / Decimal(100)) * rate, contract_currency)


def unbilled(charges: Iterable[TimeCharge], period_end: date) -> list[TimeCharge]:
    return [c for c in charges if c.billable and c.work_date <= period_end]
