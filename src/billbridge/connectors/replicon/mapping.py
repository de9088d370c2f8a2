"""Replicon timesheets and expense sheets ↔ canonical events.

A timesheet (``GetStandardTimesheet2``) holds rows (a project, a task, a
billing rate) of cells (a date and a duration); each cell with time in it is
one canonical time entry, ``te_<source>_<row>_<yyyymmdd>``. An expense sheet
(``GetExpenseSheetDetails``) holds entries, each one canonical expense. The
approval status is the sheet's (``approvalStatus.uri``): approved is
``approved``, rejected ``rejected``, anything else ``submitted``, so an
un-approval is an upsert that leaves ``approved``, and the flows reverse what
was posted.

The sheet's owner becomes a canonical worker through the connection's
``workers`` map, keyed by the user's uri, login name or slug; an owner it does
not name is kept raw with the reason (``Malformed``), as Harvest does. A
project goes by its ``code`` (the official ERP code), or by its uri through
``projects``; a task by ``tasks`` (uri → canonical task), else its name.

``source_version`` is the sheet's last-modified stamp in milliseconds, so the
later reading of a sheet always wins. Event ids carry the entry and that
stamp: the same sheet read twice (a re-poll, a resumed poll) is one event.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from billbridge.connectors.base import Malformed, UnmappedPerson
from billbridge.connectors.fields import blank, option_mapping
from billbridge.connectors.fields import explain as _explain
from billbridge.domain.records import Expense, TimeEntry

SOURCE = "replicon"
APPROVED = "urn:replicon:approval-status:approved"
REJECTED = "urn:replicon:approval-status:rejected"
WAITING = "urn:replicon:approval-status:waiting"
OPEN = "urn:replicon:approval-status:open"
NOT_BILLABLE = "urn:replicon:expense-billing-item-type:not-billable"


@dataclass(frozen=True)
class MappingConfig:
    source: str = SOURCE
    workers: Mapping[str, str] = field(default_factory=dict)
    """Replicon user uri, login name or slug → canonical worker id."""
    projects: Mapping[str, str] = field(default_factory=dict)
    """Replicon project uri → official project code, for projects without a code."""
    tasks: Mapping[str, str] = field(default_factory=dict)
    """Replicon task uri → canonical task id; unmapped tasks go by their name."""
    default_currency: str | None = None
    """For an expense whose currency names no ISO code."""

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, source: str = SOURCE) -> MappingConfig:
        currency = options.get("default_currency")
        return cls(source=source, workers=option_mapping(options.get("workers"), "workers"),
                   projects=option_mapping(options.get("projects"), "projects"),
                   tasks=option_mapping(options.get("tasks"), "tasks"),
                   default_currency=str(currency).upper() if currency else None)


class Unmappable(Exception):
    """Why one entry cannot become an event; turned into ``Malformed``."""


# -- Replicon's value shapes -----------------------------------------------------------
def parse_stamp(value: Any) -> datetime | None:
    """A list cell's date-time: ISO-8601 text, or Replicon's ``{year, month,
    day, hour, minute, second, millisecond}`` in UTC."""
    if isinstance(value, Mapping):
        try:
            return datetime(int(value["year"]), int(value["month"]), int(value["day"]),
                            int(value.get("hour") or 0), int(value.get("minute") or 0),
                            int(value.get("second") or 0),
                            int(value.get("millisecond") or 0) * 1000, tzinfo=UTC)
        except (KeyError, TypeError, ValueError):
            return None
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def stamp_ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def date_of(value: Any) -> date | None:
    """Replicon's ``Date`` object, ``{year, month, day}``."""
    if not isinstance(value, Mapping):
        return None
    try:
        return date(int(value["year"]), int(value["month"]), int(value["day"]))
    except (KeyError, TypeError, ValueError):
        return None


def date_object(day: date) -> dict[str, int]:
    return {"year": day.year, "month": day.month, "day": day.day}


def hours_of(value: Any) -> Decimal | None:
    """Replicon's ``Duration`` object as hours, to the hundredth (half up)."""
    if not isinstance(value, Mapping):
        return None
    try:
        seconds = (Decimal(int(value.get("hours") or 0)) * 3600
                   + Decimal(int(value.get("minutes") or 0)) * 60
                   + Decimal(int(value.get("seconds") or 0))
                   + Decimal(int(value.get("milliseconds") or 0)) / 1000
                   + Decimal(int(value.get("microseconds") or 0)) / 1_000_000)
    except (TypeError, ValueError, InvalidOperation):
        return None
    return (seconds / 3600).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def duration_of(hours: Decimal) -> dict[str, int]:
    """Hours as Replicon's ``Duration`` (whole seconds)."""
    seconds = int((hours * 3600).to_integral_value(rounding=ROUND_HALF_UP))
    return {"hours": seconds // 3600, "minutes": seconds % 3600 // 60, "seconds": seconds % 60,
            "milliseconds": 0, "microseconds": 0}


def status_of(approval: Any) -> str:
    uri = approval.get("uri") if isinstance(approval, Mapping) else None
    return {APPROVED: "approved", REJECTED: "rejected"}.get(str(uri), "submitted")


def tail(uri: Any) -> str:
    """The last segment of a Replicon uri: ``urn:…:timesheet-row:42`` → ``42``."""
    return str(uri).rsplit(":", 1)[-1]


def fingerprint(data: Mapping[str, Any]) -> str:
    """What an entry says, in 12 hex digits: an entry is sent again only when it changed."""
    text = json.dumps({k: v for k, v in data.items() if k != "source_version"},
                      sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]  # a change marker, not a secret


# -- one sheet ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Entry:
    """One canonical entry of a sheet: its id, its project (for a later
    deletion), what it says, and its event (or why there is none)."""

    id: str
    project: str
    mark: str
    event: dict[str, Any] | Malformed


def _ref(record: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = record.get(name)
    return value if isinstance(value, Mapping) else {}


def _worker(owner: Any, config: MappingConfig) -> str | None:
    owner = owner if isinstance(owner, Mapping) else {}
    return next((config.workers[str(owner.get(key))] for key in ("uri", "loginName", "slug")
                 if config.workers.get(str(owner.get(key)))), None)


def _who(owner: Any, config: MappingConfig) -> str:
    worker = _worker(owner, config)
    if worker:
        return worker
    owner = owner if isinstance(owner, Mapping) else {}
    raise Unmappable(f"unmapped Replicon user {owner.get('loginName') or owner.get('uri')} "
                     f"({owner.get('displayText')}): map their uri or login name under "
                     f"workers in the {config.source} connection")


def _code(project: Any, config: MappingConfig) -> str:
    project = project if isinstance(project, Mapping) else {}
    code = project.get("code")
    if blank(code):
        code = config.projects.get(str(project.get("uri")))
    if blank(code):
        raise Unmappable(f"Replicon project {project.get('uri')} ({project.get('displayText')}) "
                         "has no code: give it its official project code in Replicon")
    return str(code).strip()


def _event(kind: str, entry_id: str, raw: Mapping[str, Any], data_of: Any,
           model: type[TimeEntry] | type[Expense], version: int, at: datetime,
           config: MappingConfig) -> Entry:
    label = "time entry" if kind == "time_entry" else "expense"
    eid = f"{kind}:{entry_id}:{version}"
    try:
        data = data_of()
        data["source_version"] = version
        model.model_validate(data)
    except Unmappable as exc:
        reason = f"Replicon {label} {entry_id}: {exc}"
        return Entry(entry_id, "", f"malformed:{reason}", Malformed(dict(raw), reason,
                                                                     f"{eid}:malformed"))
    except ValidationError as exc:
        reason = f"Replicon {label} {entry_id}: {_explain(exc)}"
        return Entry(entry_id, "", f"malformed:{reason}", Malformed(dict(raw), reason,
                                                                     f"{eid}:malformed"))
    return Entry(entry_id, data["project"], fingerprint(data),
                 {"type": f"{kind}.upserted", "source": config.source, "id": eid,
                  "at": at.isoformat(), "data": data})


def timesheet_entries(sheet: Mapping[str, Any], approval: Any, *, version: int, at: datetime,
                      config: MappingConfig) -> list[Entry]:
    """The entries of one ``GetStandardTimesheet2`` answer under ``approval``."""
    entries: list[Entry] = []
    status = status_of(approval)
    for row in sheet.get("rows") or []:
        if not isinstance(row, Mapping):
            continue
        for cell in row.get("cells") or []:
            day = date_of(cell.get("date")) if isinstance(cell, Mapping) else None
            hours = hours_of(cell.get("duration")) if isinstance(cell, Mapping) else None
            if day is None or not hours:
                continue
            entry_id = f"te_{config.source}_{tail(row.get('uri'))}_{day:%Y%m%d}"
            raw = {"timesheet": sheet.get("uri"), "owner": sheet.get("owner"),
                   "approvalStatus": approval, "row": {k: v for k, v in row.items()
                                                       if k != "cells"}, "cell": cell}

            def data(row: Mapping[str, Any] = row, cell: Mapping[str, Any] = cell,
                     entry_id: str = entry_id, day: date = day,
                     hours: Decimal = hours) -> dict[str, Any]:
                task = _ref(row, "task")
                return {"id": entry_id, "worker": _who(sheet.get("owner"), config),
                        "project": _code(row.get("project"), config),
                        "task": config.tasks.get(str(task.get("uri")))
                        or task.get("name") or task.get("displayText"),
                        "work_date": day.isoformat(), "hours": str(hours),
                        "billable": isinstance(row.get("billingRate"), Mapping),
                        "notes": str(cell.get("comments") or ""), "status": status}

            entry = _event("time_entry", entry_id, raw, data, TimeEntry, version, at, config)
            if isinstance(entry.event, Malformed) and _worker(sheet.get("owner"), config) is None:
                entry = replace(entry, event=replace(entry.event, unmapped=_unmapped(
                    sheet, row, entry_id, day, hours, status, config)))  # hours not priced
            entries.append(entry)
    return entries


def _unmapped(sheet: Mapping[str, Any], row: Mapping[str, Any], entry_id: str, day: date,
              hours: Decimal, status: str, config: MappingConfig) -> UnmappedPerson:
    """What finance needs to count an unmapped owner's hours as leakage."""
    owner = _ref(sheet, "owner")
    try:
        project: str | None = _code(row.get("project"), config)
    except Unmappable:
        project = None
    return UnmappedPerson(
        connection=config.source, user=str(owner.get("loginName") or owner.get("uri")),
        name=str(owner["displayText"]) if owner.get("displayText") else None, entry=entry_id,
        hours=str(hours), approved=status == "approved", project=project,
        work_date=day.isoformat())


def _currency(amount: Mapping[str, Any], config: MappingConfig) -> str:
    currency = _ref(amount, "currency")
    for key in ("code", "displayText", "name"):
        text = str(currency.get(key) or "").strip()
        if len(text) == 3 and text.isalpha():
            return text.upper()
    if config.default_currency:
        return config.default_currency.upper()
    raise Unmappable(f"currency {currency.get('uri')} ({currency.get('symbol')}) names no ISO "
                     "code and the connection sets no default_currency")


def _billable(item: Mapping[str, Any]) -> bool:
    billing = item.get("billingItemType")
    return not (isinstance(billing, Mapping) and billing.get("uri") == NOT_BILLABLE)


def expense_entries(sheet: Mapping[str, Any], *, version: int, at: datetime,
                    config: MappingConfig) -> list[Entry]:
    """The entries of one ``GetExpenseSheetDetails`` answer."""
    entries: list[Entry] = []
    status = status_of(sheet.get("approvalStatus"))
    for item in sheet.get("entries") or []:
        if not isinstance(item, Mapping):
            continue
        entry_id = f"ex_{config.source}_{tail(item.get('uri'))}"
        raw = {"expenseSheet": sheet.get("uri"), "owner": sheet.get("owner"),
               "approvalStatus": sheet.get("approvalStatus"), "entry": item}

        def data(item: Mapping[str, Any] = item, entry_id: str = entry_id) -> dict[str, Any]:
            amount = _ref(item, "incurredAmount")
            day = date_of(item.get("incurredDate"))
            if day is None:
                raise Unmappable(f"incurredDate is {item.get('incurredDate')!r}, not a date")
            code = _ref(item, "expenseCode")
            return {"id": entry_id, "worker": _who(sheet.get("owner"), config),
                    "project": _code(item.get("project"), config), "date": day.isoformat(),
                    "amount": str(amount.get("amount")), "currency": _currency(amount, config),
                    "category": str(code.get("displayText") or ""),
                    "billable": _billable(item), "status": status}

        entries.append(_event("expense", entry_id, raw, data, Expense, version, at, config))
    return entries


def deleted_event(kind: str, entry_id: str, project: str | None, *, version: int, at: datetime,
                  config: MappingConfig) -> dict[str, Any]:
    """``time_entry.deleted`` / ``expense.deleted``; a cell emptied, then filled
    and emptied again, is two deletions, so the id carries the sheet's version."""
    data: dict[str, Any] = {"id": entry_id}
    if project:
        data["project"] = project
    return {"type": f"{kind}.deleted", "source": config.source,
            "id": f"{kind}:{entry_id}:deleted:{version}", "at": at.isoformat(), "data": data}
