"""Harvest time entries and expenses ↔ canonical events.

A Harvest user becomes a canonical worker through the connection's
``workers`` map (Harvest user id → worker id); a task becomes a canonical
task through ``tasks`` (Harvest task id → task id), else its name; a project
becomes its Harvest ``code``, which carries the official (ERP) project code.
``is_closed`` (approved through timesheet approval) is the approval status:
true is ``approved``, false ``submitted``, so an un-approval is an upsert that
leaves ``approved``. Hours and amounts are JSON numbers the client reads as
Decimal, every digit kept. What cannot be mapped becomes ``Malformed``, never an
exception.

Event ids are ``time_entry:{id}:{updated_at}`` (``expense:…``): a record read
twice (an overlapping re-poll, a resumed poll) is one inbox event. A record
that cannot be mapped gets ``…:malformed`` so that, once the mapping is fixed,
the same version maps under its own id instead of being dropped as a repeat.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from billbridge.connectors.base import Malformed, UnmappedPerson
from billbridge.connectors.fields import blank, instant
from billbridge.connectors.fields import explain as _explain
from billbridge.domain.records import Expense, TimeEntry

SOURCE = "harvest"


def _id_map(value: Any) -> dict[str, str]:
    """A map from options: a mapping, or its JSON text (environment variables)."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a mapping of Harvest ids, got {value!r}")
    return {str(k): str(v) for k, v in value.items()}


@dataclass(frozen=True)
class MappingConfig:
    source: str = SOURCE
    workers: Mapping[str, str] = field(default_factory=dict)
    """Harvest user id → canonical worker id."""
    tasks: Mapping[str, str] = field(default_factory=dict)
    """Harvest task id → canonical task id; unmapped tasks go by their name."""
    default_currency: str | None = None
    """For an expense whose client carries no currency."""

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, source: str = SOURCE) -> MappingConfig:
        currency = options.get("default_currency")
        return cls(source=source, workers=_id_map(options.get("workers")),
                   tasks=_id_map(options.get("tasks")),
                   default_currency=str(currency).upper() if currency else None)


def canonical_id(kind: str, harvest_id: Any, source: str = SOURCE) -> str:
    """``te_harvest_636709355``: canonical ids carry their source, as
    DOMAIN.md's ``te_…`` ids do, so two connections never collide."""
    return f"{'te' if kind == 'time_entry' else 'ex'}_{source}_{harvest_id}"


parse_stamp = instant


def event_id(kind: str, record: Mapping[str, Any]) -> str:
    return f"{kind}:{record.get('id')}:{record.get('updated_at')}"


def _ref(record: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = record.get(name)
    return value if isinstance(value, Mapping) else {}


def project_code(record: Mapping[str, Any], codes: Mapping[int, str]) -> str | None:
    """The record's project code: inline (expenses, newer time entries) or
    from the account's projects by id (time entries as documented carry only
    the project's id and name)."""
    project = _ref(record, "project")
    code, project_id = project.get("code"), project.get("id")
    if blank(code):
        code = codes.get(project_id) if isinstance(project_id, int) else None
    return None if blank(code) else str(code).strip()


def _decimal(value: Any) -> Decimal | None:
    """A JSON number (read as Decimal, or an int) as Decimal: 2.11 stays 2.11."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


class _Unmappable(Exception):
    """Why one record cannot become an event; turned into ``Malformed``."""


def _who(record: Mapping[str, Any], config: MappingConfig) -> str:
    user = _ref(record, "user")
    worker = config.workers.get(str(user.get("id")))
    if worker is None:
        raise _Unmappable(f"unknown Harvest user {user.get('id')} ({user.get('name')}): map it "
                          f"under workers in the {config.source} connection")
    return worker


def _unmapped(record: Mapping[str, Any], codes: Mapping[int, str],
              config: MappingConfig) -> UnmappedPerson:
    user = _ref(record, "user")
    hours = _decimal(record.get("hours"))
    return UnmappedPerson(
        connection=config.source, user=str(user.get("id")),
        name=str(user["name"]) if user.get("name") else None,
        entry=canonical_id("time_entry", record.get("id"), config.source),
        hours=None if hours is None else str(hours), approved=_status(record) == "approved",
        project=project_code(record, codes),
        work_date=str(record["spent_date"]) if record.get("spent_date") else None)


def _where(record: Mapping[str, Any], codes: Mapping[int, str]) -> str:
    code = project_code(record, codes)
    if code is None:
        project = _ref(record, "project")
        raise _Unmappable(f"Harvest project {project.get('id')} ({project.get('name')}) has no "
                          "code: give it its official project code in Harvest")
    return code


def _number(record: Mapping[str, Any], name: str) -> str:
    value = _decimal(record.get(name))
    if value is None:
        raise _Unmappable(f"{name} is {record.get(name)!r}, not a number")
    return str(value)


def _event(kind: str, record: Mapping[str, Any], config: MappingConfig,
           build: Callable[[], dict[str, Any]], model: type[TimeEntry] | type[Expense]
           ) -> dict[str, Any] | Malformed:
    """The envelope around ``build()``'s record, or why there is none."""
    label = "time entry" if kind == "time_entry" else "expense"
    eid = event_id(kind, record)
    updated = parse_stamp(record.get("updated_at"))
    try:
        if not isinstance(record.get("id"), int):
            raise _Unmappable(f"id is {record.get('id')!r}, not an integer")
        if updated is None:
            raise _Unmappable(f"updated_at is {record.get('updated_at')!r}, not a time")
        data = build()
        data["source_version"] = int(updated.timestamp())
        model.model_validate(data)
    except _Unmappable as exc:
        return Malformed(dict(record), f"Harvest {label} {record.get('id')}: {exc}",
                         f"{eid}:malformed")
    except ValidationError as exc:
        return Malformed(dict(record), f"Harvest {label} {record.get('id')}: {_explain(exc)}",
                         f"{eid}:malformed")
    return {"type": f"{kind}.upserted", "source": config.source, "id": eid,
            "at": updated.isoformat(), "data": data}


def _status(record: Mapping[str, Any]) -> str:
    return "approved" if record.get("is_closed") is True else "submitted"


def time_entry_event(entry: Mapping[str, Any], codes: Mapping[int, str],
                     config: MappingConfig) -> dict[str, Any] | Malformed:
    """``time_entry.upserted`` for one Harvest time entry."""

    def build() -> dict[str, Any]:
        task = _ref(entry, "task")
        return {"id": canonical_id("time_entry", entry.get("id"), config.source),
                "worker": _who(entry, config), "project": _where(entry, codes),
                "task": config.tasks.get(str(task.get("id"))) or task.get("name"),
                "work_date": entry.get("spent_date"), "hours": _number(entry, "hours"),
                "billable": entry.get("billable"), "notes": entry.get("notes") or "",
                "status": _status(entry)}

    event = _event("time_entry", entry, config, build, TimeEntry)
    if isinstance(event, Malformed) and str(_ref(entry, "user").get("id")) not in config.workers:
        return replace(event, unmapped=_unmapped(entry, codes, config))  # hours not priced
    return event


def expense_event(expense: Mapping[str, Any], config: MappingConfig
                  ) -> dict[str, Any] | Malformed:
    """``expense.upserted`` for one Harvest expense, in its client's currency."""

    def build() -> dict[str, Any]:
        currency = _ref(expense, "client").get("currency") or config.default_currency
        if blank(currency):
            raise _Unmappable("its client has no currency and the connection sets no "
                              "default_currency")
        return {"id": canonical_id("expense", expense.get("id"), config.source),
                "worker": _who(expense, config), "project": _where(expense, {}),
                "date": expense.get("spent_date"), "amount": _number(expense, "total_cost"),
                "currency": str(currency).upper(),
                "category": _ref(expense, "expense_category").get("name") or "",
                "billable": expense.get("billable"), "status": _status(expense)}

    return _event("expense", expense, config, build, Expense)


def deleted_event(kind: str, harvest_id: Any, project: str | None, *, at: datetime,
                  config: MappingConfig) -> dict[str, Any]:
    """``time_entry.deleted`` / ``expense.deleted``: one per record, ever
    (Harvest never reuses an id), so a deletion seen twice is one event."""
    data: dict[str, Any] = {"id": canonical_id(kind, harvest_id, config.source)}
    if project:
        data["project"] = project
    return {"type": f"{kind}.deleted", "source": config.source,
            "id": f"{kind}:{harvest_id}:deleted", "at": at.isoformat(), "data": data}
