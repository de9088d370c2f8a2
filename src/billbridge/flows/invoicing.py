"""Invoice building on `billing.run`: unbilled billable charges, milestones and
expenses up to the period end, one invoice per project, tax from the governed
rule table, posted to the ERP; what it bills is marked invoiced. ERP status
changes (issued, paid, void) flow back to the CRM and PSA."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from billbridge.domain.billing import (
    build_invoice,
    fixed_line,
    retainer_lines,
    tax_rule_for,
    time_lines,
)
from billbridge.domain.events import BillingRun, CanonicalEvent, InvoiceStatusChanged
from billbridge.domain.reasons import ReasonCode
from billbridge.domain.records import (
    BillingModel,
    Contract,
    Customer,
    InvoiceLine,
    Project,
    TimeCharge,
)
from billbridge.flows.base import Command, FlowContext, FlowRegistry, Outcome, Problem, RecordChange


def _due(ctx: FlowContext, period_end: date, project: str | None
         ) -> dict[str, tuple[list[TimeCharge], list[dict[str, Any]]]]:
    grouped: dict[str, tuple[list[TimeCharge], list[dict[str, Any]]]] = defaultdict(
        lambda: ([], []))
    for stored in ctx.find("time_charge", "posted"):
        charge = TimeCharge.model_validate({k: v for k, v in stored.items()
                                            if k in TimeCharge.model_fields})
        if charge.billable and charge.work_date <= period_end and project in (None,
                                                                            charge.project):
            grouped[charge.project][0].append(charge)
    for line in ctx.find("billable_line", "posted"):
        if date.fromisoformat(line["date"]) <= period_end and project in (None, line["project"]):
            grouped[str(line["project"])][1].append(dict(line))
    return grouped


@dataclass
class _Bill:
    """What one invoice will hold, gathered project by project."""

    customer: Customer
    contract: Contract
    project: str | None
    charges: list[TimeCharge] = field(default_factory=list)
    extras: list[dict[str, Any]] = field(default_factory=list)
    retainers: list[InvoiceLine] = field(default_factory=list)
    retainer_periods: list[str] = field(default_factory=list)
    projects: list[Project] = field(default_factory=list)


def _retainer(ctx: FlowContext, project: Project, contract: Contract, period_end: date,
              bill: _Bill) -> None:
    period = f"{period_end:%Y-%m}"
    key = f"{contract.id}:{period}"
    if ctx.record("retainer_period", key) is not None or period_end < contract.start:
        return  # each period invoices the retainer once
    hours = sum((Decimal(str(c["hours"])) for c in ctx.find("time_charge", "posted")
                 if c["project"] == project.code and str(c["work_date"]).startswith(period)),
                Decimal(0))
    bill.retainers += retainer_lines(contract, period, hours, "")
    bill.retainer_periods.append(key)


def on_billing_run(event: CanonicalEvent, ctx: FlowContext) -> Outcome:
    run: BillingRun = event.record()
    outcome = Outcome()
    due = _due(ctx, run.period_end, run.project)
    retainer_projects = [Project.model_validate(p) for p in ctx.find("project")
                         if run.project in (None, p["code"])]
    bills: dict[tuple[str, str | None, str, str], _Bill] = {}
    for project in sorted(retainer_projects, key=lambda p: p.code):
        charges, extras = due.get(project.code, ([], []))
        contract = Contract.model_validate(ctx.record("contract", project.contract)) \
            if project.contract else None
        activation = ctx.record("activation", project.code)
        is_retainer = contract is not None and contract.billing_model is BillingModel.RETAINER
        if not (charges or extras or is_retainer):
            continue
        if contract is None or activation is None:
            outcome.problems.append(Problem(ReasonCode.HANDLER_ERROR,
                                            f"project {project.code} has no contract to bill "
                                            "under", "project", project.code))
            continue
        customer = Customer.model_validate(ctx.record("customer", str(activation["customer"])))
        per_project = customer.invoice_grouping == "project"
        key = (customer.id, project.code if per_project else None, contract.legal_entity,
               contract.currency)
        bill = bills.setdefault(key, _Bill(customer, contract,
                                           project.code if per_project else None))
        bill.charges += charges
        bill.extras += extras
        bill.projects.append(project)
        if is_retainer:
            _retainer(ctx, project, contract, run.period_end, bill)
    for bill in bills.values():
        _issue(ctx, outcome, bill, run.period_end, event)
    return outcome


def _issue(ctx: FlowContext, outcome: Outcome, bill: _Bill, period_end: date,
           run: CanonicalEvent) -> None:
    invoice_date = run.at.date()
    customer, contract = bill.customer, bill.contract
    subject = bill.project or customer.id
    entity = next((e for e in ctx.config.legal_entities if e.code == contract.legal_entity),
                  None)
    rule = tax_rule_for(ctx.config, entity.country, customer) if entity else None
    if rule is None:
        outcome.problems.append(Problem(
            ReasonCode.NO_TAX_RULE,
            f"no tax rule for entity {contract.legal_entity} "
            f"({entity.country if entity else '?'}) billing a {customer.billing_country} "
            f"customer {'with' if customer.tax_id else 'without'} a tax id",
            "project" if bill.project else "customer", subject))
        return
    if not (bill.charges or bill.extras or bill.retainers):
        return
    task_names = _task_names(ctx, bill)
    lines = time_lines(bill.charges, customer.line_detail, rule.tax_code, task_names)
    lines += [fixed_line(x["description"], Decimal(x["amount"]), rule.tax_code, x["id"])
              for x in sorted(bill.extras, key=lambda x: (x["date"], x["id"]))]
    lines += [line.model_copy(update={"tax_code": rule.tax_code}) for line in bill.retainers]
    invoice = build_invoice(f"inv_{subject}_{period_end}", customer, bill.project,
                            contract.currency, lines, rule, ctx.config_version,
                            po_number=customer.po_number, invoice_date=invoice_date,
                            period_end=period_end)
    data = invoice.model_dump(mode="json")
    # The hub's record also keeps what decided the figures and which run raised
    # it (finance's drill-down); the ERP is sent the invoice alone.
    outcome.changes.append(RecordChange("invoice", invoice.id, {
        **data, "billing_run": run.id, "legal_entity": contract.legal_entity,
        "tax_rule": rule.model_dump(mode="json")}, "draft"))
    for charge in bill.charges:
        stored = ctx.record("time_charge", charge.id) or {}
        outcome.changes.append(RecordChange("time_charge", charge.id,
                                            {**stored, "status": "invoiced",
                                             "invoice": invoice.id}, "invoiced"))
    for extra in bill.extras:
        outcome.changes.append(RecordChange("billable_line", extra["id"],
                                            {**extra, "invoice": invoice.id}, "invoiced"))
    for key in bill.retainer_periods:
        outcome.changes.append(RecordChange("retainer_period", key,
                                            {"period": key, "invoice": invoice.id}, "invoiced"))
    outcome.commands.append(Command("erp", "invoice.create", f"invoice:{invoice.id}", data,
                                    "invoice", invoice.id,
                                    depends_on=("project", bill.projects[0].code)))


def _task_names(ctx: FlowContext, bill: _Bill) -> dict[str, str]:
    names = {t.id: t.name for p in bill.projects for t in p.tasks}
    out = {}
    for charge in bill.charges:
        entry = ctx.record("time_entry", charge.time_entry) or {}
        out[charge.time_entry] = names.get(str(entry.get("task")), str(entry.get("task")))
    return out


def on_invoice_status_changed(event: CanonicalEvent, ctx: FlowContext) -> Outcome:
    change: InvoiceStatusChanged = event.record()
    stored = ctx.record("invoice", change.invoice)
    if stored is None:
        return Outcome(problems=[Problem(ReasonCode.HANDLER_ERROR,
                                         f"the ERP reports invoice {change.invoice}, which "
                                         "billbridge did not raise", "invoice",
                                         change.invoice)])
    if stored.get("status") == change.status.value:
        return Outcome(note="status unchanged")
    updated = {**stored, "status": change.status.value,
               "erp_id": change.erp_id or stored.get("erp_id")}
    outcome = Outcome(changes=[RecordChange("invoice", change.invoice, updated,
                                            change.status.value)])
    activation = ctx.record("activation", str(stored.get("project")))
    fields = {"invoice": change.invoice, "invoice_status": change.status.value,
              "invoice_total": stored.get("total")}
    # The change is the cause: a status the invoice had before (issued again
    # after a payment was removed) is a new write-back, not a repeat of the old.
    origin = f"invoice-status:{change.invoice}:{change.status.value}:{event.id}"
    if activation is not None:
        outcome.commands.append(Command("crm", "crm.writeback", origin,
                                        {"system": activation["source"],
                                         "record": activation["opportunity"],
                                         "fields": fields}, "invoice", change.invoice))
    if ctx.config.psa_system:
        outcome.commands.append(Command("psa", "psa.writeback", origin,
                                        {"system": ctx.config.psa_system,
                                         "record": stored.get("project"), "fields": fields},
                                        "invoice", change.invoice))
    return outcome


def register(registry: FlowRegistry) -> None:
    registry.register("billing.run", on_billing_run)
    registry.register("invoice.status_changed", on_invoice_status_changed)
