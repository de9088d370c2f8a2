"""Invoice building on `billing.run`: unbilled billable charges, milestones and
expenses up to the period end, one invoice per project, tax from the governed
rule table, posted to the ERP; what it bills is marked invoiced. ERP status
changes (issued, paid, void) flow back to the CRM and PSA."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal
from typing import Any

from billbridge.domain.billing import build_invoice, fixed_line, tax_rule_for, time_line
from billbridge.domain.events import BillingRun, CanonicalEvent, InvoiceStatusChanged
from billbridge.domain.reasons import ReasonCode
from billbridge.domain.records import Contract, Customer, InvoiceLine, Project, TimeCharge
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


def on_billing_run(event: CanonicalEvent, ctx: FlowContext) -> Outcome:
    run: BillingRun = event.record()
    outcome = Outcome()
    for code, (charges, extras) in sorted(_due(ctx, run.period_end, run.project).items()):
        project = Project.model_validate(ctx.record("project", code))
        contract = Contract.model_validate(ctx.record("contract", project.contract)) \
            if project.contract else None
        activation = ctx.record("activation", code)
        if contract is None or activation is None:
            outcome.problems.append(Problem(ReasonCode.HANDLER_ERROR,
                                            f"project {code} has no contract to bill under",
                                            "project", code))
            continue
        customer = Customer.model_validate(ctx.record("customer", str(activation["customer"])))
        entity = next((e for e in ctx.config.legal_entities
                       if e.code == contract.legal_entity), None)
        rule = tax_rule_for(ctx.config, entity.country, customer) if entity else None
        if rule is None:
            outcome.problems.append(Problem(
                ReasonCode.NO_TAX_RULE,
                f"no tax rule for entity {contract.legal_entity} "
                f"({entity.country if entity else '?'}) billing a {customer.billing_country} "
                f"customer {'with' if customer.tax_id else 'without'} a tax id",
                "project", code))
            continue
        lines: list[InvoiceLine] = [time_line(c, rule.tax_code) for c in
                                    sorted(charges, key=lambda c: (c.work_date, c.id))]
        lines += [fixed_line(x["description"], Decimal(x["amount"]), rule.tax_code, x["id"])
                  for x in sorted(extras, key=lambda x: (x["date"], x["id"]))]
        invoice = build_invoice(f"inv_{code}_{run.period_end}", customer, code,
                                contract.currency, lines, rule, ctx.config_version,
                                po_number=customer.po_number)
        data = invoice.model_dump(mode="json")
        outcome.changes.append(RecordChange("invoice", invoice.id, data, "draft"))
        for charge in charges:
            stored = ctx.record("time_charge", charge.id) or {}
            outcome.changes.append(RecordChange("time_charge", charge.id,
                                                {**stored, "status": "invoiced",
                                                 "invoice": invoice.id}, "invoiced"))
        for extra in extras:
            outcome.changes.append(RecordChange("billable_line", extra["id"],
                                                {**extra, "invoice": invoice.id}, "invoiced"))
        outcome.commands.append(Command("erp", "invoice.create", f"invoice:{invoice.id}", data,
                                        "invoice", invoice.id, depends_on=("project", code)))
    return outcome


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
    origin = f"invoice-status:{change.invoice}:{change.status.value}"
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
