"""Invoice building on `billing.run`: unbilled billable charges up to the
period end, one invoice per project, tax from the governed rule table, posted
to the ERP; the charges it bills are marked invoiced."""

from __future__ import annotations

from collections import defaultdict

from billbridge.domain.billing import build_invoice, tax_rule_for, unbilled
from billbridge.domain.events import BillingRun, CanonicalEvent
from billbridge.domain.reasons import ReasonCode
from billbridge.domain.records import Contract, Customer, Project, TimeCharge
from billbridge.flows.base import Command, FlowContext, FlowRegistry, Outcome, Problem, RecordChange


def on_billing_run(event: CanonicalEvent, ctx: FlowContext) -> Outcome:
    run: BillingRun = event.record()
    charges = [TimeCharge.model_validate({k: v for k, v in c.items()
                                          if k in TimeCharge.model_fields})
               for c in ctx.find("time_charge", "posted")]
    by_project: dict[str, list[TimeCharge]] = defaultdict(list)
    for charge in unbilled(charges, run.period_end):
        if run.project in (None, charge.project):
            by_project[charge.project].append(charge)
    outcome = Outcome()
    for code, group in sorted(by_project.items()):
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
        invoice = build_invoice(f"inv_{code}_{run.period_end}", customer, code,
                                contract.currency, group, rule, ctx.config_version,
                                po_number=customer.po_number)
        data = invoice.model_dump(mode="json")
        outcome.changes.append(RecordChange("invoice", invoice.id, data, "draft"))
        for charge in group:
            stored = ctx.record("time_charge", charge.id) or {}
            outcome.changes.append(RecordChange("time_charge", charge.id,
                                                {**stored, "status": "invoiced",
                                                 "invoice": invoice.id}, "invoiced"))
        outcome.commands.append(Command("erp", "invoice.create", f"invoice:{invoice.id}", data,
                                        "invoice", invoice.id,
                                        depends_on=("project", project.code)))
    return outcome


def register(registry: FlowRegistry) -> None:
    registry.register("billing.run", on_billing_run)
