"""Kantata records ↔ canonical events.

Mostly data: which Kantata user is which worker, which custom field holds the
project code (and the ERP ids written back), which project status colour
means which canonical status. A record that cannot become a valid event
becomes ``Malformed(raw, reason, event_id)`` with a reason naming the record,
the field and where to fix it; nothing here raises.

Event ids are the record id and its version stamp (epoch seconds of
``updated_at``, or of the approval that changed it), so one change seen by
webhook and by poll is one inbox event.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from billbridge.connectors.base import Malformed, UnmappedPerson
from billbridge.connectors.fields import blank, explain, instant
from billbridge.domain.events import PAYLOADS
from billbridge.domain.money import quantize_hours
from billbridge.domain.records import EntryStatus, MilestoneStatus, ProjectStatus

SOURCE = "kantata"
# Canonical ids of Kantata records: a hub fed by two time tools must not confuse
# Kantata's time entry 123 with another tool's 123.
TIME_ENTRY_ID, EXPENSE_ID, MILESTONE_ID = "kt-te-", "kt-ex-", "kt-ms-"

# Kantata's project status colours (Knowledge Base, "Project Status List"):
# gray not yet started, light green close to starting, green in progress,
# yellow in progress with a pending action, red blocked or ended, blue finished.
COLOR_STATUS: dict[str, ProjectStatus] = {
    "gray": ProjectStatus.PENDING, "light_green": ProjectStatus.PENDING,
    "green": ProjectStatus.ACTIVE, "yellow": ProjectStatus.ACTIVE,
    "red": ProjectStatus.ON_HOLD, "blue": ProjectStatus.CLOSED,
}
# A story's state (its status type when custom task statuses are in use).
STORY_STATES: dict[str, MilestoneStatus] = {
    "not started": MilestoneStatus.OPEN, "started": MilestoneStatus.OPEN,
    "needs info": MilestoneStatus.OPEN, "completed": MilestoneStatus.COMPLETED,
}
SUBMISSION_STATUS = {"approved": EntryStatus.APPROVED, "rejected": EntryStatus.REJECTED}
TRUTHY = frozenset({"true", "yes", "1", "accepted", "y"})


def _mapping_option(value: Any) -> dict[str, str]:
    """A mapping option as given in code, or as JSON from an environment variable."""
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else {}
    return {str(k): str(v) for k, v in dict(value or {}).items()}


@dataclass(frozen=True)
class MappingConfig:
    source: str = SOURCE
    workers: Mapping[str, str] = field(default_factory=dict)
    """Kantata user id → canonical worker id."""
    custom_fields: Mapping[str, str] = field(default_factory=dict)
    """Name → Kantata custom field id: ``project_code`` (read on workspaces,
    links a Kantata project to the ERP project), ``milestone_accepted`` (on
    stories), and the write-back fields (``erp_project_id``,
    ``erp_customer_id``, ``invoice``, ``invoice_status``, ``invoice_total``)."""
    project_statuses: Mapping[str, str] = field(default_factory=dict)
    """Status key or message (lower case) → canonical status, over the colours."""

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, source: str = SOURCE) -> MappingConfig:
        return cls(source=source, workers=_mapping_option(options.get("workers")),
                   custom_fields=_mapping_option(options.get("custom_fields")),
                   project_statuses={k.lower(): v for k, v in _mapping_option(
                       options.get("project_statuses")).items()})

    def field_id(self, name: str) -> str | None:
        found = self.custom_fields.get(name)
        return None if blank(found) else str(found)


# -- stamps ------------------------------------------------------------------------
parse_stamp = instant  # Kantata datetimes are ISO 8601 with an offset


def stamp_seconds(value: Any) -> int | None:
    parsed = parse_stamp(value)
    return None if parsed is None else int(parsed.timestamp())


def iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def from_minor_units(amount: int, base_unit: int) -> Decimal:
    """Kantata's ``*_in_cents`` in the currency's unit: ``base_unit`` minor
    units make one unit (100 for USD, 1 for JPY), kept to that precision."""
    return (Decimal(amount) / base_unit).quantize(Decimal(1) / base_unit)


def version_of(*records: Mapping[str, Any] | None, changed_at: int | None = None) -> int | None:
    """A record's version: the newest of its own ``updated_at``, that of the
    submission that approved (or un-approved) it, and the change that made us
    look. Approval lives on the submission, so the entry's own stamp may not
    move when its approval does (docs/connectors/kantata.md)."""
    stamps = [s for s in (stamp_seconds(r.get("updated_at")) for r in records if r) if s]
    if changed_at:
        stamps.append(changed_at)
    return max(stamps) if stamps else None


# -- workspaces ----------------------------------------------------------------------
def custom_values(record: Mapping[str, Any],
                  objects: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """``{custom field id: value}`` of a record fetched with
    ``include=custom_field_values``."""
    values = objects.get("custom_field_values") or {}
    found: dict[str, Any] = {}
    for value_id in record.get("custom_field_value_ids") or []:
        value = values.get(str(value_id))
        if value is not None:
            found[str(value.get("custom_field_id"))] = value.get("value")
    return found


@dataclass(frozen=True)
class Workspace:
    """What the mappings need of a Kantata project."""

    id: str
    title: str
    code: str | None
    base_unit: int
    require_expense_approvals: bool
    raw: Mapping[str, Any]

    @classmethod
    def of(cls, record: Mapping[str, Any], objects: Mapping[str, Any],
           config: MappingConfig) -> Workspace:
        cf = config.field_id("project_code")
        code = custom_values(record, objects).get(cf) if cf else None
        return cls(str(record.get("id")), str(record.get("title") or ""),
                   None if blank(code) else str(code).strip(),
                   int(record.get("currency_base_unit") or 100),
                   bool(record.get("require_expense_approvals")), record)


def project_status(workspace: Mapping[str, Any],
                   config: MappingConfig) -> ProjectStatus | str:
    """The canonical status of a workspace, or why there is none."""
    if workspace.get("archived"):
        return ProjectStatus.CLOSED
    given = workspace.get("status")
    status: Mapping[str, Any] = given if isinstance(given, dict) else {}
    for name in (str(status.get("key")), str(status.get("message") or "").lower()):
        if name in config.project_statuses:
            return ProjectStatus(config.project_statuses[name])
    color = str(status.get("color") or "").lower().replace("-", "_").replace(" ", "_")
    color = "gray" if color == "grey" else color
    if color in COLOR_STATUS:
        return COLOR_STATUS[color]
    return (f"status {status or None!r} has no known colour; map its key or message in the "
            "connection's `project_statuses` option")


def _event(kind: str, event_id: str, at: int, data: Mapping[str, Any], raw: Any,
           config: MappingConfig, what: str) -> dict[str, Any] | Malformed:
    """A canonical event, or ``Malformed`` naming every field the record refuses."""
    try:
        PAYLOADS[kind].model_validate(data)
    except ValidationError as exc:
        return Malformed(raw, f"{what}: {explain(exc)}", event_id)
    return {"type": kind, "source": config.source, "id": event_id, "at": iso(at),
            "data": dict(data)}


def no_code(workspace: Workspace, config: MappingConfig) -> str:
    return (f"project (workspace) {workspace.id} {workspace.title!r} has no project code in "
            f"custom field {config.field_id('project_code') or '(not configured)'} "
            "('project_code'); enter the ERP project code on the Kantata project")


def project_event(workspace: Workspace, stories: Sequence[Mapping[str, Any]], *,
                  event_id: str, at: int | None,
                  config: MappingConfig) -> dict[str, Any] | Malformed | None:
    """``project.updated``: the workspace's status and its stories as tasks.
    A workspace without a project code is not linked to billing yet: None."""
    if workspace.code is None:
        return None
    what = f"Kantata project (workspace) {workspace.id}"
    status = project_status(workspace.raw, config)
    if not isinstance(status, ProjectStatus):
        return Malformed(dict(workspace.raw), f"{what}: {status}", event_id)
    if at is None:
        return Malformed(dict(workspace.raw), f"{what}: updated_at is missing", event_id)
    tasks = [{"id": str(s["id"]), "name": str(s.get("title") or ""),
              "billable": s.get("billable") is not False}
             for s in sorted(stories, key=lambda s: int(s.get("position") or 0))
             if not s.get("deleted_at")]
    data = {"code": workspace.code, "name": workspace.title or workspace.code,
            "status": status.value, "tasks": tasks}
    return _event("project.updated", event_id, at, data, dict(workspace.raw), config, what)


def milestone_event(story: Mapping[str, Any], workspace: Workspace | None,
                    values: Mapping[str, Any],
                    config: MappingConfig) -> dict[str, Any] | Malformed | None:
    """``milestone.updated`` for a story of type milestone: its budget is the
    amount billed on acceptance; acceptance is a custom field on the story."""
    at = stamp_seconds(story.get("updated_at"))
    event_id = f"milestone:{story.get('id')}:{at}"
    what = f"Kantata milestone {story.get('id')}"
    if workspace is None or workspace.code is None:
        return None if workspace is not None else Malformed(
            dict(story), f"{what}: its project {story.get('workspace_id')} is not visible",
            event_id)
    accepted = config.field_id("milestone_accepted")
    if accepted and str(values.get(accepted) or "").strip().lower() in TRUTHY:
        status: MilestoneStatus | None = MilestoneStatus.ACCEPTED
    else:
        status = STORY_STATES.get(str(story.get("state") or "").lower())
    if status is None:
        return Malformed(dict(story), f"{what}: state {story.get('state')!r} is not one of "
                         f"{', '.join(STORY_STATES)}", event_id)
    if at is None:
        return Malformed(dict(story), f"{what}: updated_at is missing", event_id)
    cents = story.get("budget_estimate_in_cents")
    if isinstance(cents, bool) or not isinstance(cents, int):
        return Malformed(dict(story), f"{what}: budget_estimate_in_cents {cents!r} is not a "
                         "whole number; set the milestone's budget in Kantata", event_id)
    data = {"project": workspace.code, "milestone": {
        "id": f"{MILESTONE_ID}{story.get('id')}", "name": str(story.get("title") or ""),
        "amount": str(from_minor_units(cents, workspace.base_unit)),
        "due": story.get("due_date") or None, "status": status.value}}
    return _event("milestone.updated", event_id, at, data, dict(story), config, what)


# -- time and expenses -----------------------------------------------------------------
def _worker(record: Mapping[str, Any], config: MappingConfig, what: str) -> str:
    user = str(record.get("user_id"))
    if user not in config.workers:
        raise LookupError(f"{what}: user {user} is not mapped to a worker; add \"{user}\": "
                          f"\"<worker id>\" to the {config.source} connection's `workers` "
                          "option")
    return config.workers[user]


def time_entry_event(entry: Mapping[str, Any], workspace: Workspace | None,
                     submission: Mapping[str, Any] | None, config: MappingConfig, *,
                     changed_at: int | None = None) -> dict[str, Any] | Malformed:
    """``time_entry.upserted``: minutes → hours to 0.01; ``approved`` →
    approved, a rejected submission → rejected, anything else → submitted."""
    version = version_of(entry, submission, changed_at=changed_at)
    event_id = f"time_entry:{entry.get('id')}:{version}"
    what = f"Kantata time entry {entry.get('id')}"
    raw = {"time_entry": dict(entry), "submission": dict(submission) if submission else None}
    if workspace is None or workspace.code is None:
        reason = no_code(workspace, config) if workspace else \
            f"project (workspace) {entry.get('workspace_id')} is not visible to billbridge"
        return Malformed(raw, f"{what}: {reason}", event_id)
    minutes = entry.get("time_in_minutes")
    try:
        worker = _worker(entry, config, what)
    except LookupError as exc:
        hours = (str(quantize_hours(Decimal(minutes) / 60))
                 if isinstance(minutes, int) and not isinstance(minutes, bool) else None)
        return Malformed(raw, str(exc), event_id, UnmappedPerson(
            config.source, str(entry.get("user_id")), None,
            f"{TIME_ENTRY_ID}{entry.get('id')}", hours,
            entry.get("approved") is True, workspace.code,
            str(entry["date_performed"]) if entry.get("date_performed") else None))
    if version is None:
        return Malformed(raw, f"{what}: updated_at is missing", event_id)
    if isinstance(minutes, bool) or not isinstance(minutes, int):
        return Malformed(raw, f"{what}: time_in_minutes {minutes!r} is not a whole number",
                         event_id)
    if entry.get("approved"):
        status = EntryStatus.APPROVED
    elif submission is not None and submission.get("status") == "rejected":
        status = EntryStatus.REJECTED
    else:
        status = EntryStatus.SUBMITTED
    data = {"id": f"{TIME_ENTRY_ID}{entry.get('id')}", "worker": worker,
            "project": workspace.code,
            "task": None if blank(entry.get("story_id")) else str(entry["story_id"]),
            "work_date": entry.get("date_performed"),
            "hours": str(quantize_hours(Decimal(minutes) / 60)),
            "billable": entry.get("billable") is not False, "notes": entry.get("notes") or "",
            "status": status.value, "source_version": version}
    return _event("time_entry.upserted", event_id, version, data, raw, config, what)


def expense_event(expense: Mapping[str, Any], workspace: Workspace | None,
                  submission: Mapping[str, Any] | None, config: MappingConfig, *,
                  changed_at: int | None = None) -> dict[str, Any] | Malformed:
    """``expense.upserted``: cents → amount in the currency's base unit; the
    expense report's status, or approved where the project needs no approval."""
    version = version_of(expense, submission, changed_at=changed_at)
    event_id = f"expense:{expense.get('id')}:{version}"
    what = f"Kantata expense {expense.get('id')}"
    raw = {"expense": dict(expense), "submission": dict(submission) if submission else None}
    if workspace is None or workspace.code is None:
        reason = no_code(workspace, config) if workspace else \
            f"project (workspace) {expense.get('workspace_id')} is not visible to billbridge"
        return Malformed(raw, f"{what}: {reason}", event_id)
    try:
        worker = _worker(expense, config, what)
    except LookupError as exc:
        return Malformed(raw, str(exc), event_id)
    if version is None:
        return Malformed(raw, f"{what}: updated_at is missing", event_id)
    cents = expense.get("amount_in_cents")
    if isinstance(cents, bool) or not isinstance(cents, int):
        return Malformed(raw, f"{what}: amount_in_cents {cents!r} is not a whole number",
                         event_id)
    if submission is not None and submission.get("status") in SUBMISSION_STATUS:
        status = SUBMISSION_STATUS[str(submission["status"])]
    elif not workspace.require_expense_approvals:
        status = EntryStatus.APPROVED
    else:
        status = EntryStatus.SUBMITTED
    base = int(expense.get("currency_base_unit") or workspace.base_unit)
    data = {"id": f"{EXPENSE_ID}{expense.get('id')}", "worker": worker,
            "project": workspace.code, "date": expense.get("date"),
            "amount": str(from_minor_units(cents, base)), "currency": expense.get("currency"),
            "category": str(expense.get("category") or ""),
            "billable": expense.get("is_billable") is not False, "status": status.value,
            "source_version": version}
    return _event("expense.upserted", event_id, version, data, raw, config, what)


DELETED_KINDS = {"time_entries": ("time_entry", TIME_ENTRY_ID),
                 "expenses": ("expense", EXPENSE_ID)}


def deleted_event(resource: str, record_id: str, project: str | None, at: int,
                  config: MappingConfig) -> dict[str, Any]:
    """``time_entry.deleted`` / ``expense.deleted``: one event id per record,
    whether a webhook or the id-set comparison found the deletion."""
    kind, prefix = DELETED_KINDS[resource]
    data: dict[str, Any] = {"id": f"{prefix}{record_id}"}
    if project:
        data["project"] = project  # the aggregate: the deletion waits behind the entry's work
    return {"type": f"{kind}.deleted", "source": config.source,
            "id": f"{kind}:{record_id}:deleted", "at": iso(at), "data": data}
