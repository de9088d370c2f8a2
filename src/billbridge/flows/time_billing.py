"""Time to billing, first slice: projects become known, approved time entries
are checked and priced into TimeCharges and posted to the ERP as labour.

Issue 5 completes the rules (contracts, budgets, periods, reversals); this
slice already follows DOMAIN.md's order for the checks it makes.
"""

from __future__ import annotations

from typing import Any

from billbridge.domain.events import CanonicalEvent
from billbridge.domain.money import line_amount
from billbridge.domain.rating import rate_for
from billbridge.domain.reasons import ReasonCode
from billbridge.domain.records import EntryStatus, Project, ProjectStatus, TimeCharge, TimeEntry
from billbridge.flows.base import Command, FlowContext, FlowRegistry, Outcome, Problem, RecordChange


def project_dependency(code: str) -> str:
    return f"project:{code}"


def _project_command(project: Project) -> tuple[str, str, str, dict[str, Any]]:
    payload = {"code": project.code, "name": project.name, "status": project.status.value}
    return ("erp", "project.upsert", f"project:{project.code}", payload)


def on_project_updated(event: CanonicalEvent, ctx: FlowContext) -> Outcome:
    project: Project = event.record()
    outcome = Outcome(changes=[RecordChange("project", project.code,
                                            project.model_dump(mode="json"),
                                            project.status.value)])
    role, kind, origin, payload = _project_command(project)
    outcome.commands.append(Command(role, kind, origin, payload, "project", project.code))
    if project.status is ProjectStatus.ACTIVE:
        outcome.releases.append(project_dependency(project.code))
    return outcome


def on_time_entry_upserted(event: CanonicalEvent, ctx: FlowContext) -> Outcome:
    entry: TimeEntry = event.record()
    previous = ctx.record("time_entry", entry.id)
    if previous is not None:
        applied = int(previous["source_version"])
        if entry.source_version < applied or (entry.source_version == applied and not ctx.replay):
            return Outcome(note=f"stale version {entry.source_version} of {entry.id} ignored")

    outcome = Outcome(changes=[RecordChange("time_entry", entry.id,
                                            entry.model_dump(mode="json"), entry.status.value)])
    if entry.status is not EntryStatus.APPROVED:
        return outcome

    stored = ctx.record("project", entry.project)
    if stored is None:
        outcome.park_on = project_dependency(entry.project)
        outcome.park_reason = ReasonCode.PROJECT_UNKNOWN.value
        return outcome
    project = Project.model_validate(stored)

    def fail(reason: ReasonCode, message: str) -> Outcome:
        outcome.problems.append(Problem(reason, message, "time_entry", entry.id))
        return outcome

    if project.status is not ProjectStatus.ACTIVE:
        return fail(ReasonCode.PROJECT_NOT_ACTIVE,
                    f"project {project.code} is {project.status.value}, not active")
    if entry.task is not None and project.tasks and project.task(entry.task) is None:
        return fail(ReasonCode.TASK_UNKNOWN,
                    f"task {entry.task!r} is not a task of project {project.code}")
    card_id = ctx.config.default_rate_card
    rate = rate_for(ctx.config, card_id, entry.worker, entry.work_date) if card_id else None
    if rate is None:
        return fail(ReasonCode.NO_RATE,
                    f"no rate for worker {entry.worker} on {entry.work_date} in rate card "
                    f"{card_id!r}: add the worker's role or an override to the card in force")

    task = project.task(entry.task) if entry.task else None
    billable = entry.billable and (task is None or task.billable)
    amount = line_amount(entry.hours, rate.hourly, rate.currency)
    charge = TimeCharge(
        id=f"tc_{entry.id}", time_entry=entry.id, project=project.code, worker=entry.worker,
        work_date=entry.work_date, hours=entry.hours, rate=rate.hourly, amount=amount.amount,
        currency=rate.currency, billable=billable, rate_card=rate.card.id,
        rate_card_version=rate.card.version, config_version=ctx.config_version,
        source_version=entry.source_version,
    )
    data = charge.model_dump(mode="json")
    outcome.changes.append(RecordChange("time_charge", charge.id, data, "posted"))
    origin = f"time_entry:{entry.id}:v{entry.source_version}"
    outcome.commands.append(Command("erp", "time_charge.post", origin, data, "time_charge",
                                    charge.id, depends_on=_project_command(project)))
    return outcome


def register(registry: FlowRegistry) -> None:
    registry.register("project.updated", on_project_updated)
    registry.register("time_entry.upserted", on_time_entry_upserted)
