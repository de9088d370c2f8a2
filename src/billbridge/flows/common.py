"""What several flows share: the ERP commands for a project and a customer,
so that every flow that depends on them computes the same idempotency key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from billbridge.domain.records import Contract, Customer, Project
from billbridge.flows.base import FlowContext

CommandSpec = tuple[str, str, str, Mapping[str, Any]]


def project_dependency(code: str) -> str:
    return f"project:{code}"


def customer_command(customer: Customer) -> CommandSpec:
    payload = {"id": customer.id, "name": customer.name, "currency": customer.currency,
               "billing_country": customer.billing_country, "tax_id": customer.tax_id}
    return ("erp", "customer.upsert", f"customer:{customer.id}", payload)


def project_command(project: Project, customer: str | None, cause: str) -> CommandSpec:
    """The ERP upsert of a project as one event left it. ``cause`` (the event
    id) is part of the origin: a project put back to a state it had before is
    a new write, not a repeat of the old one."""
    payload: dict[str, Any] = {"code": project.code, "name": project.name,
                               "status": project.status.value,
                               "tasks": [{"id": t.id, "name": t.name, "billable": t.billable}
                                         for t in project.tasks]}
    if customer:
        payload["customer"] = customer
    if project.contract:
        payload["contract"] = project.contract
    return ("erp", "project.upsert", f"project:{project.code}:{cause}", payload)


def project_and_contract(ctx: FlowContext, code: str) -> tuple[Project | None, Contract | None]:
    """The project known by ``code`` and the contract it bills under, if any."""
    stored = ctx.record("project", code)
    if stored is None:
        return None, None
    project = Project.model_validate(stored)
    data = ctx.record("contract", project.contract) if project.contract else None
    return project, Contract.model_validate(data) if data else None
