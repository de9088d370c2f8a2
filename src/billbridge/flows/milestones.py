"""Milestones and expenses become billable lines: a milestone moving to
`accepted` bills its amount once; an approved billable expense bills at its
amount plus markup, converted to the contract currency at the expense date's
rate (NO_FX_RATE without one)."""

from __future__ import annotations

from billbridge.domain.billing import Rejection, fx_rate, price_expense
from billbridge.domain.events import CanonicalEvent, MilestoneUpdated
from billbridge.domain.reasons import ReasonCode
from billbridge.domain.records import (
    EntryStatus,
    Expense,
    MilestoneStatus,
    ProjectStatus,
)
from billbridge.flows.base import FlowContext, FlowRegistry, Outcome, Problem, RecordChange
from billbridge.flows.common import project_and_contract, project_dependency

BILLED_ALREADY = (MilestoneStatus.ACCEPTED.value, MilestoneStatus.INVOICED.value)


def on_milestone_updated(event: CanonicalEvent, ctx: FlowContext) -> Outcome:
    update: MilestoneUpdated = event.record()
    milestone = update.milestone
    stored = ctx.record("milestone", milestone.id)
    already = stored is not None and stored.get("status") in BILLED_ALREADY
    status = stored["status"] if already and stored else milestone.status.value
    outcome = Outcome(changes=[RecordChange(
        "milestone", milestone.id, milestone.model_dump(mode="json") | {
            "project": update.project, "status": status}, status)])
    if milestone.status is not MilestoneStatus.ACCEPTED or already:
        return outcome  # a second acceptance bills nothing
    project, contract = project_and_contract(ctx, update.project)
    if project is None or contract is None:
        return Outcome(park_on=project_dependency(update.project),
                       park_reason=ReasonCode.PROJECT_UNKNOWN.value)
    outcome.changes.append(RecordChange("billable_line", f"ms_{milestone.id}", {
        "id": f"ms_{milestone.id}", "project": update.project, "kind": "milestone",
        "description": f"Milestone: {milestone.name}", "amount": str(milestone.amount),
        "currency": contract.currency, "date": event.at.date().isoformat(),
        "milestone": milestone.id, "config_version": ctx.config_version,
        "priced_by": f"{event.source}/{event.id}"}, "posted"))
    return outcome


def on_expense_upserted(event: CanonicalEvent, ctx: FlowContext) -> Outcome:
    expense: Expense = event.record()
    previous = ctx.record("expense", expense.id)
    if previous is not None and int(previous.get("source_version", 0)) > expense.source_version:
        return Outcome(note=f"stale version of expense {expense.id} ignored")
    project, contract = project_and_contract(ctx, expense.project)
    if expense.status is EntryStatus.APPROVED and project is None:
        return Outcome(park_on=project_dependency(expense.project),
                       park_reason=ReasonCode.PROJECT_UNKNOWN.value)
    outcome = Outcome(changes=[RecordChange("expense", expense.id,
                                            expense.model_dump(mode="json"),
                                            expense.status.value)])
    line = ctx.record("billable_line", f"ex_{expense.id}")
    if line is not None and line.get("status") == "invoiced":
        if expense.status is not EntryStatus.APPROVED or previous != expense.model_dump(
                mode="json"):
            outcome.problems.append(Problem(ReasonCode.INVOICED_CHANGE,
                                            f"expense {expense.id} changed after it was "
                                            "invoiced", "expense", expense.id))
        return outcome
    if line is not None:
        outcome.changes.append(RecordChange("billable_line", f"ex_{expense.id}",
                                            {**line, "status": "reversed"}, "reversed"))
    if expense.status is not EntryStatus.APPROVED or not expense.billable or project is None:
        return outcome

    def fail(reason: ReasonCode, message: str) -> Outcome:
        outcome.problems.append(Problem(reason, message, "expense", expense.id))
        return outcome

    if project.status is not ProjectStatus.ACTIVE:
        return fail(ReasonCode.PROJECT_NOT_ACTIVE,
                    f"project {project.code} is {project.status.value}, not active")
    if contract is None:
        return fail(ReasonCode.PROJECT_NOT_ACTIVE, f"project {project.code} has no contract")
    if expense.date < contract.start or (contract.end is not None and expense.date > contract.end):
        return fail(ReasonCode.OUTSIDE_CONTRACT_PERIOD,
                    f"expense date {expense.date} is outside contract {contract.id}")
    priced = price_expense(expense.amount, expense.currency, contract.expense_markup_pct,
                           expense.date, contract.currency, ctx.config)
    if isinstance(priced, Rejection):
        return fail(priced.reason, f"expense {expense.id}: {priced.message}")
    outcome.changes.append(RecordChange("billable_line", f"ex_{expense.id}", {
        "id": f"ex_{expense.id}", "project": project.code, "kind": "expense",
        "description": f"Expense: {expense.category or 'expense'} {expense.date}",
        "amount": str(priced), "currency": contract.currency,
        "date": expense.date.isoformat(),
        # What the price was made of, kept for finance's drill-down: the amount
        # claimed, the markup and the governed rate of the expense date.
        "expense": expense.id, "claimed": str(expense.amount),
        "claimed_currency": expense.currency, "markup_pct": str(contract.expense_markup_pct),
        "fx_rate": str(fx_rate(ctx.config, expense.date, expense.currency, contract.currency)),
        "config_version": ctx.config_version, "priced_by": f"{event.source}/{event.id}"},
        "posted"))
    outcome.resolved.append(("expense", expense.id))
    return outcome


def register(registry: FlowRegistry) -> None:
    registry.register("milestone.updated", on_milestone_updated)
    registry.register("expense.upserted", on_expense_upserted)
