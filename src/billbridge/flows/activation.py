"""Opportunity to project activation: a won deal creates or updates the ERP
customer (matched through the xref, then by tax id, never by name alone), the
contract and the ERP project; once the ERP confirms the project, its ids are
written back to the CRM (and to the PSA when one is configured)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from billbridge.domain.events import CanonicalEvent, OpportunityClosedWon, PostingConfirmed
from billbridge.domain.reasons import ReasonCode
from billbridge.domain.records import Customer, Project, ProjectStatus
from billbridge.flows.base import (
    Binding,
    Command,
    FlowContext,
    FlowRegistry,
    Outcome,
    Problem,
    RecordChange,
)
from billbridge.flows.common import customer_command, project_command, project_dependency


def match_customer(ctx: FlowContext, source: str, customer: Customer) -> str:
    """The canonical customer: by xref, else by tax id, else a new one."""
    known = ctx.resolve(source, "customer", customer.id)
    if known:
        return known
    if customer.tax_id:
        for stored in ctx.find("customer"):
            if stored.get("tax_id") == customer.tax_id:
                return str(stored["id"])
    return f"cust_{source}_{customer.id}"


def source_conflict(source: str, company: str, existing: Customer,
                    given: Customer) -> list[Problem]:
    """A ``SOURCE_CONFLICT`` naming the fields where the CRM's company differs
    from the customer the ERP was given (none when they agree)."""
    differing = [name for name in ("name", "billing_country", "tax_id", "currency")
                 if getattr(existing, name) != getattr(given, name)]
    if not differing:
        return []
    return [Problem(ReasonCode.SOURCE_CONFLICT,
                    f"{source} company {company} differs from ERP customer {existing.id} in "
                    f"{', '.join(differing)}; the ERP owns the customer master, so the CRM's "
                    "values were not applied", "customer", existing.id)]


def on_customer_upserted(event: CanonicalEvent, ctx: FlowContext) -> Outcome:
    """A CRM company changed. Before a deal is won it is no customer yet (the
    won deal brings it); after, the ERP owns the customer master, so the
    CRM's values are recorded, never applied: a difference is a conflict."""
    company: Customer = event.record()
    customer_id = ctx.resolve(event.source, "customer", company.id)
    stored = ctx.record("customer", customer_id) if customer_id else None
    if stored is None:
        return Outcome(note="not a customer yet: a won deal creates it")
    existing = Customer.model_validate(stored)
    return Outcome(problems=source_conflict(event.source, company.id, existing, company),
                   note="the ERP owns the customer master; nothing applied")


def on_closed_won(event: CanonicalEvent, ctx: FlowContext) -> Outcome:
    won: OpportunityClosedWon = event.record()
    customer_id = match_customer(ctx, event.source, won.customer)
    customer = won.customer.model_copy(update={"id": customer_id})
    previous = ctx.record("activation", won.project.code)
    previous_status = "activated" if previous and previous.get("erp_project_id") else "pending"
    stored = ctx.record("customer", customer_id)
    conflicts: list[Problem] = []
    if stored is not None:
        # After creation the ERP owns the customer master: the CRM's version of
        # it is not applied; a difference is shown to operators as a conflict.
        existing = Customer.model_validate(stored)
        conflicts += source_conflict(event.source, won.customer.id, existing, customer)
        customer = existing
    contract = won.contract.model_copy(update={"customer": customer_id,
                                               "opportunity": won.opportunity.id})
    template = next((t for t in ctx.config.project_templates
                     if t.id == ctx.config.default_project_template), None)
    # The PSA owns the project's tasks: when it has told us of them, they stay;
    # otherwise the deal's tasks, else the template's.
    known = ctx.record("project", won.project.code)
    kept = Project.model_validate(known) if known else None
    given = (kept.tasks if kept else ()) or won.project.tasks or \
        (template.tasks if template else ())
    tasks = tuple(t.model_copy(update={"project": won.project.code}) for t in given)
    # Winning the deal activates its project; a hold or a close the PSA set
    # since stays (the PSA owns the project's status), also when the deal is
    # seen again.
    status = kept.status if kept and kept.status in (ProjectStatus.ON_HOLD,
                                                      ProjectStatus.CLOSED) \
        else ProjectStatus.ACTIVE
    project = won.project.model_copy(update={"id": won.project.code, "contract": contract.id,
                                             "status": status, "tasks": tasks})
    outcome = Outcome(
        changes=[
            RecordChange("customer", customer_id, customer.model_dump(mode="json"), "active"),
            RecordChange("contract", contract.id, contract.model_dump(mode="json"), "active"),
            RecordChange("project", project.code, project.model_dump(mode="json"), "active"),
            RecordChange("activation", project.code, {
                "project": project.code, "customer": customer_id, "source": event.source,
                "opportunity": won.opportunity.id, "closed_won_at": event.at.isoformat(),
                "contract_value": str(won.opportunity.amount),
                "currency": won.opportunity.currency, **_kept(previous)}, previous_status),
        ],
        bindings=[Binding(event.source, "customer", won.customer.id, customer_id),
                  Binding(event.source, "opportunity", won.opportunity.id, contract.id)],
        releases=[project_dependency(project.code)] if status is ProjectStatus.ACTIVE else [],
        problems=conflicts,
    )
    outcome.commands.append(Command(*customer_command(customer), record_kind="customer",
                                    record_id=customer_id))
    # The same deal seen again (a re-poll after our own write-back changed its
    # modification stamp) must not re-create or re-write anything: the cause is
    # the opportunity, not the event.
    outcome.commands.append(Command(*project_command(project, customer_id,
                                                     f"won:{won.opportunity.id}"),
                                    record_kind="project", record_id=project.code,
                                    depends_on=("customer", customer_id)))
    return outcome


def _kept(previous: Mapping[str, Any] | None) -> dict[str, Any]:
    """What an earlier activation learnt from the ERP, kept across repeats."""
    if previous is None:
        return {}
    return {k: previous[k] for k in ("erp_project_id", "activated_at", "closed_won_at")
            if k in previous}


def on_project_updated(event: CanonicalEvent, ctx: FlowContext) -> Outcome:
    """A project change from the PSA: status and tasks are the PSA's; the
    contract and customer stay as activation set them."""
    update: Project = event.record()
    stored = ctx.record("project", update.code)
    merged = update.model_copy(update={"id": update.code})
    customer = None
    if stored is not None:
        merged = merged.model_copy(update={"contract": stored.get("contract")})
        activation = ctx.record("activation", update.code)
        customer = str(activation["customer"]) if activation else None
    outcome = Outcome(changes=[RecordChange("project", update.code,
                                            merged.model_dump(mode="json"),
                                            merged.status.value)])
    outcome.commands.append(Command(*project_command(merged, customer, event.id),
                                    record_kind="project", record_id=merged.code))
    if merged.status is ProjectStatus.ACTIVE:
        outcome.releases.append(project_dependency(merged.code))
    return outcome


def on_posting_confirmed(event: CanonicalEvent, ctx: FlowContext) -> Outcome:
    confirmed: PostingConfirmed = event.record()
    if confirmed.record_kind != "project" or confirmed.record_id is None:
        return Outcome(note="nothing to write back")
    activation = ctx.record("activation", confirmed.record_id)
    if activation is None or activation.get("erp_project_id") == confirmed.external_id:
        return Outcome(note="no activation waits on this project")
    customer_erp_id = ctx.external_id(confirmed.target, "customer", str(activation["customer"]))
    fields = {"erp_project_id": confirmed.external_id, "erp_customer_id": customer_erp_id,
              "project_code": confirmed.record_id}
    done = {**activation, "erp_project_id": confirmed.external_id,
            "activated_at": event.at.isoformat()}
    outcome = Outcome(changes=[RecordChange("activation", confirmed.record_id, done,
                                            "activated")])
    origin = f"activation:{confirmed.record_id}:{confirmed.external_id}"
    outcome.commands.append(Command(
        "crm", "crm.writeback", origin,
        {"system": activation["source"], "record": activation["opportunity"],
         "fields": fields}, "activation", confirmed.record_id))
    if ctx.config.psa_system:
        # A PSA that does not have the project yet creates it: it needs the
        # project's and the customer's names for that.
        project = ctx.record("project", confirmed.record_id) or {}
        customer = ctx.record("customer", str(activation["customer"])) or {}
        outcome.commands.append(Command(
            "psa", "psa.writeback", origin,
            {"system": ctx.config.psa_system, "record": confirmed.record_id, "fields": fields,
             "project_name": project.get("name"), "customer_name": customer.get("name")},
            "activation", confirmed.record_id))
    return outcome


def register(registry: FlowRegistry) -> None:
    registry.register("opportunity.closed_won", on_closed_won)
    registry.register("customer.upserted", on_customer_upserted)
    registry.register("project.updated", on_project_updated)
    registry.register("posting.confirmed", on_posting_confirmed)
