"""The emulator's fake Replicon tenant: users, projects and tasks, timesheets
(rows of dated cells) and expense sheets, with Replicon's approval statuses
and each sheet's last-modified stamp (milliseconds, UTC).

Assumptions where Replicon's documentation is silent (docs/connectors/
replicon.md): submitting, approving, reopening or rejecting a sheet changes
its last-modified stamp, as editing it does; an approved sheet cannot be
edited until it is reopened; a sheet's own stamps strictly increase.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from billbridge.connectors.replicon.mapping import (
    APPROVED,
    NOT_BILLABLE,
    OPEN,
    REJECTED,
    WAITING,
    date_object,
    duration_of,
)

STATUS_TEXT = {OPEN: "Not Submitted", WAITING: "Waiting for Approval", APPROVED: "Approved",
               REJECTED: "Rejected"}


@dataclass
class Sheet:
    """A timesheet or an expense sheet: its owner, status, stamp and lines."""

    uri: str
    owner: str  # user uri
    start: date
    end: date
    status: str = OPEN
    modified: int = 0
    lines: list[dict[str, Any]] = field(default_factory=list)


def iso_ms(stamp: int) -> str:
    """A stamp as the list services' text: ``2026-03-09T17:00:00.123Z``."""
    when = datetime.fromtimestamp(stamp / 1000, UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


class Tenant:
    def __init__(self, slug: str = "acme") -> None:
        self.slug = slug
        self.users: dict[str, dict[str, Any]] = {}
        self.projects: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, dict[str, Any]] = {}
        self.timesheets: dict[str, Sheet] = {}
        self.expense_sheets: dict[str, Sheet] = {}
        self._ids = itertools.count(1)
        self._clock = 0

    def uri(self, kind: str, key: Any = None) -> str:
        return f"urn:replicon-tenant:{self.slug}:{kind}:{next(self._ids) if key is None else key}"

    # -- reference data --------------------------------------------------------------------
    def add_user(self, login: str, name: str, key: Any = None) -> str:
        uri = self.uri("user", key)
        self.users[uri] = {"uri": uri, "loginName": login, "displayText": name,
                           "slug": login.lower()}
        return uri

    def add_project(self, name: str, code: str | None = None, key: Any = None,
                    description: str = "") -> dict[str, Any]:
        uri = self.uri("project", key)
        self.projects[uri] = {"uri": uri, "name": name, "displayText": name, "code": code,
                              "slug": name.lower().replace(" ", "-"),
                              "description": description}
        return self.projects[uri]

    def add_task(self, project: str, name: str, key: Any = None) -> str:
        uri = self.uri("task", key)
        self.tasks[uri] = {"uri": uri, "name": name, "displayText": name, "project": project}
        return uri

    def project_by_code(self, code: str) -> dict[str, Any] | None:
        return next((p for p in self.projects.values() if p.get("code") == code), None)

    # -- stamps ----------------------------------------------------------------------------
    def touch(self, sheet: Sheet, at: int | str | None = None) -> None:
        """A new last-modified stamp: ``at`` (ms or ISO text) when a test pins
        one, else now, never behind the tenant's clock or the sheet's own."""
        if at is not None:
            stamp = at if isinstance(at, int) else int(
                datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp() * 1000)
        else:
            stamp = max(int(time.time() * 1000), self._clock, sheet.modified + 1)
        self._clock = max(self._clock, stamp)
        sheet.modified = stamp

    # -- timesheets ------------------------------------------------------------------------
    def timesheet(self, owner: str, start: date, end: date, key: Any = None,
                  at: int | str | None = None) -> Sheet:
        sheet = Sheet(self.uri("timesheet", key), owner, start, end)
        self.timesheets[sheet.uri] = sheet
        self.touch(sheet, at)
        return sheet

    def log(self, sheet: Sheet, project: str, day: date, hours: Decimal, *,
            task: str | None = None, billable: bool = True, comments: str = "",
            at: int | str | None = None, row_key: Any = None) -> str:
        """Hours on a day of the sheet's row for (project, task), made if new
        (its uri ending in ``row_key`` when given); 0 hours empties the cell.
        Returns the row's uri."""
        if sheet.status in (APPROVED, WAITING):
            raise ValueError(f"timesheet {sheet.uri} is {STATUS_TEXT[sheet.status]}: "
                             "reopen it first")
        row = next((r for r in sheet.lines if r["project"] == project and r["task"] == task
                    and r["billable"] == billable), None)
        if row is None:
            row = {"uri": self.uri("timesheet-row", row_key), "project": project, "task": task,
                   "billable": billable, "cells": {}}
            sheet.lines.append(row)
        if hours:
            row["cells"][day.isoformat()] = {"hours": Decimal(hours), "comments": comments}
        else:
            row["cells"].pop(day.isoformat(), None)
        self.touch(sheet, at)
        return str(row["uri"])

    def set_status(self, sheet: Sheet, status: str, at: int | str | None = None) -> None:
        """Submit (waiting), approve, reject or reopen (open) a sheet."""
        sheet.status = status
        self.touch(sheet, at)

    # -- expense sheets --------------------------------------------------------------------
    def expense_sheet(self, owner: str, day: date, key: Any = None,
                      at: int | str | None = None) -> Sheet:
        sheet = Sheet(self.uri("expense-sheet", key), owner, day, day)
        self.expense_sheets[sheet.uri] = sheet
        self.touch(sheet, at)
        return sheet

    def expense(self, sheet: Sheet, project: str, day: date, amount: Decimal, currency: str,
                *, code: str = "Travel", billable: bool = True, description: str = "",
                at: int | str | None = None) -> str:
        if sheet.status in (APPROVED, WAITING):
            raise ValueError(f"expense sheet {sheet.uri} is {STATUS_TEXT[sheet.status]}: "
                             "reopen it first")
        uri = self.uri("expense-entry")
        sheet.lines.append({"uri": uri, "project": project, "date": day.isoformat(),
                            "amount": Decimal(amount), "currency": currency, "code": code,
                            "billable": billable, "description": description})
        self.touch(sheet, at)
        return uri

    # -- Replicon's shapes -----------------------------------------------------------------
    def user_ref(self, uri: str) -> dict[str, Any]:
        user = self.users.get(uri) or {"uri": uri, "loginName": None, "displayText": None,
                                       "slug": None}
        return dict(user)

    def project_ref(self, uri: str) -> dict[str, Any]:
        project = self.projects[uri]
        return {k: project[k] for k in ("uri", "name", "displayText", "code", "slug")}

    def standard_timesheet(self, sheet: Sheet) -> dict[str, Any]:
        """``GetStandardTimesheet2``'s ``d``."""
        rows = []
        for row in sheet.lines:
            task = self.tasks.get(row["task"]) if row["task"] else None
            rows.append({
                "uri": row["uri"], "project": self.project_ref(row["project"]),
                "task": {k: task[k] for k in ("uri", "name", "displayText")} if task else None,
                "billingRate": {"uri": f"urn:replicon-tenant:{self.slug}:company-billing-rate:1",
                                "name": "Standard", "displayText": "Standard"}
                if row["billable"] else None,
                "activity": None, "customFieldValues": [],
                "cells": [{"date": date_object(date.fromisoformat(day)),
                           "duration": duration_of(cell["hours"]),
                           "comments": cell["comments"], "customFieldValues": []}
                          for day, cell in sorted(row["cells"].items())]})
        return {"uri": sheet.uri, "slug": sheet.uri.rsplit(":", 1)[-1],
                "owner": self.user_ref(sheet.owner),
                "dateRange": {"startDate": date_object(sheet.start),
                              "endDate": date_object(sheet.end)},
                "dueDate": date_object(sheet.end), "rows": rows, "customFields": [],
                "noticeExplicitlyAccepted": False, "timesheetNotice": None}

    def expense_details(self, sheet: Sheet) -> dict[str, Any]:
        """``GetExpenseSheetDetails``'s ``d``."""
        entries = [{
            "uri": line["uri"], "project": self.project_ref(line["project"]),
            "expenseCode": {"uri": f"urn:replicon-tenant:{self.slug}:expense-code:"
                                   f"{line['code'].lower()}", "displayText": line["code"]},
            "incurredAmount": {"amount": float(line["amount"]),
                               "currency": {"uri": f"urn:replicon-tenant:{self.slug}:currency:"
                                                   f"{line['currency']}",
                                            "displayText": line["currency"],
                                            "symbol": "$" if line["currency"] == "USD" else ""}},
            "incurredDate": date_object(date.fromisoformat(line["date"])),
            "description": line["description"],
            "billingItemType": {"uri": "urn:replicon:expense-billing-item-type:billable"
                                if line["billable"] else NOT_BILLABLE}}
            for line in sheet.lines]
        return {"uri": sheet.uri, "slug": sheet.uri.rsplit(":", 1)[-1],
                "owner": self.user_ref(sheet.owner), "date": date_object(sheet.start),
                "description": "", "approvalStatus": self.status_ref(sheet.status),
                "entries": entries}

    @staticmethod
    def status_ref(status: str) -> dict[str, str]:
        return {"uri": status, "displayText": STATUS_TEXT[status]}
