"""Timesheet and expense rows ↔ canonical events.

Columns are found by their header through a column map (canonical field →
header), governed like any configuration: the active configuration's
``field_mappings[<connection>]`` overrides the connection's ``columns``
option, which overrides the defaults below. A file whose header holds the
mapped ``amount`` column is an expense sheet; any other, a timesheet.

**Row identity** (what makes a re-sent file or an overlapping export change
nothing): a row's entry is its ``id`` column when the export has one; else
the digest of its key columns (worker, project, task, date, notes) with its
occurrence among identical keys in the file (so two identical blocks in one
day stay two entries). Its event id adds the digest of the mapped content:
the same row read again is the same event, which the inbox drops; an edited
row is a new version of the same entry. ``source_version`` is the file's
modification time, so a newer export of an entry supersedes an older one.

A row that cannot be mapped becomes ``Malformed`` with its file, line number
and raw text; its event id is the digest of that text, so importing the file
again opens no second exception for it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from billbridge.connectors.base import Malformed, UnmappedPerson
from billbridge.connectors.fields import explain, option_mapping
from billbridge.connectors.timesheet_files.client import Row, SheetFile
from billbridge.domain.records import Expense, TimeEntry

SOURCE = "csv"
DEFAULT_COLUMNS: dict[str, str] = {
    "id": "Entry ID", "worker": "Employee", "project": "Project", "task": "Task",
    "work_date": "Date", "hours": "Hours", "billable": "Billable", "notes": "Notes",
    "status": "Status", "amount": "Amount", "currency": "Currency", "category": "Category",
}
"""Canonical field → header. ``work_date`` is the date column of expenses too."""
SETTINGS = ("date_format", "decimal_comma")
"""Keys of a column map that are settings, not columns."""
KEY_FIELDS = ("worker", "project", "task", "work_date", "notes")
STATUSES = {"approved": "approved", "submitted": "submitted", "pending": "submitted",
            "open": "submitted", "rejected": "rejected"}
TRUE, FALSE = frozenset({"yes", "y", "true", "1", "billable"}), frozenset(
    {"no", "n", "false", "0", "non-billable", "nonbillable"})


@dataclass(frozen=True)
class Columns:
    """How one connection's files are read."""

    source: str = SOURCE
    headers: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_COLUMNS))
    workers: Mapping[str, str] = field(default_factory=dict)
    """The export's name for a person → canonical worker id; empty: the
    column holds worker ids."""
    date_format: str = "%Y-%m-%d"
    decimal_comma: bool = False
    default_currency: str | None = None

    @classmethod
    def of(cls, options: Mapping[str, Any], governed: Mapping[str, str] | None = None, *,
           source: str = SOURCE) -> Columns:
        """Defaults, then the connection's ``columns`` option, then the governed map."""
        merged = {**DEFAULT_COLUMNS, **option_mapping(options.get("columns"), "columns"),
                  **(governed or {})}
        settings = {k: merged.pop(k) for k in SETTINGS if k in merged}
        date_format = settings.get("date_format") or options.get("date_format") or "%Y-%m-%d"
        comma = settings.get("decimal_comma", options.get("decimal_comma", False))
        currency = options.get("default_currency")
        return cls(source=source, headers=merged,
                   workers=option_mapping(options.get("workers"), "workers"),
                   date_format=str(date_format),
                   decimal_comma=str(comma).lower() in ("true", "1", "yes"),
                   default_currency=str(currency).upper() if currency else None)

    def fingerprint(self) -> str:
        """What a file is read with, as a short digest: a new one reads it again."""
        shown = json.dumps([sorted(self.headers.items()), sorted(self.workers.items()),
                            self.date_format, self.decimal_comma, self.default_currency])
        return hashlib.sha256(shown.encode()).hexdigest()[:12]

    def is_expense_sheet(self, header: Mapping[str, str]) -> bool:
        return self.headers.get("amount", "") in header


class _Bad(Exception):
    """Why one row cannot become an event; turned into ``Malformed``."""


class _UnknownWorker(_Bad):
    """The row's person is mapped to no worker (approved hours are leakage)."""


def row_event(row: Row, sheet: SheetFile, columns: Columns, occurrence: int
              ) -> dict[str, Any] | Malformed:
    """``time_entry.upserted`` or ``expense.upserted`` for one row, or why not.
    ``occurrence`` counts earlier rows of the file with the same key columns."""
    expense = columns.is_expense_sheet(row.cells)
    kind = "expense" if expense else "time_entry"
    try:
        if "\x00extra" in row.cells:
            raise _Bad("more cells than the header has columns")
        key = entry_key(row, columns, occurrence)
        data = (_expense(row, columns) if expense else _time_entry(row, columns))
        data["id"] = f"{'ex' if expense else 'te'}_{columns.source}_{key}"
        content = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
        data["source_version"] = sheet.mtime
        (Expense if expense else TimeEntry).model_validate(data)
    except _UnknownWorker as exc:
        bad = malformed(row, sheet, str(exc))
        return bad if expense else replace(bad, unmapped=_unmapped(row, columns, key))
    except _Bad as exc:
        return malformed(row, sheet, str(exc))
    except ValidationError as exc:
        return malformed(row, sheet, explain(exc))
    return {"type": f"{kind}.upserted", "source": columns.source,
            "id": f"{kind}:{key}:{content}",
            "at": datetime.fromtimestamp(sheet.mtime, UTC).isoformat(), "data": data}


def malformed(row: Row, sheet: SheetFile, why: str) -> Malformed:
    digest = hashlib.sha256(row.text.encode()).hexdigest()[:24]
    return Malformed({"file": sheet.name, "line": row.line, "text": row.text},
                     f"{sheet.name} line {row.line}: {why}", f"row:malformed:{digest}")


def entry_key(row: Row, columns: Columns, occurrence: int) -> str:
    """The entry a row is: its id column, else its key columns and occurrence."""
    given = _cell(row, columns, "id")
    if given:
        return "".join(c if c.isalnum() or c in "-_." else "_" for c in given)[:80]
    parts = [_cell(row, columns, name) for name in KEY_FIELDS]
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:20]
    return f"{digest}-{occurrence}" if occurrence else digest


def key_columns(row: Row, columns: Columns) -> tuple[str, ...]:
    return tuple(_cell(row, columns, name) for name in KEY_FIELDS)


def _time_entry(row: Row, columns: Columns) -> dict[str, Any]:
    return {"worker": _worker(row, columns), "project": _required(row, columns, "project"),
            "task": _cell(row, columns, "task") or None,
            "work_date": _date(row, columns, "work_date"),
            "hours": str(_hours(row, columns)), "billable": _billable(row, columns),
            "notes": _cell(row, columns, "notes"), "status": _status(row, columns)}


def _expense(row: Row, columns: Columns) -> dict[str, Any]:
    currency = _cell(row, columns, "currency") or columns.default_currency
    if not currency:
        raise _Bad(f"no {columns.headers.get('currency')!r} and the connection sets no "
                   "default_currency")
    return {"worker": _worker(row, columns), "project": _required(row, columns, "project"),
            "date": _date(row, columns, "work_date"),
            "amount": str(_decimal(row, columns, "amount")), "currency": currency.upper(),
            "category": _cell(row, columns, "category"), "billable": _billable(row, columns),
            "status": _status(row, columns)}


def _cell(row: Row, columns: Columns, name: str) -> str:
    header = columns.headers.get(name)
    return row.cells.get(header, "") if header else ""


def _required(row: Row, columns: Columns, name: str) -> str:
    value = _cell(row, columns, name)
    if not value:
        raise _Bad(f"{columns.headers.get(name)!r} is empty")
    return value


def _worker(row: Row, columns: Columns) -> str:
    given = _required(row, columns, "worker")
    if not columns.workers:
        return given
    worker = columns.workers.get(given)
    if worker is None:
        raise _UnknownWorker(f"unknown employee {given!r}: map it under workers in the "
                             f"{columns.source} connection")
    return worker


def _unmapped(row: Row, columns: Columns, key: str) -> UnmappedPerson:
    """What finance needs of a row whose employee no worker is mapped to."""
    def tried(read: Any) -> Any:
        try:
            return read()
        except (_Bad, ValueError):
            return None

    hours = tried(lambda: _hours(row, columns))
    return UnmappedPerson(columns.source, _cell(row, columns, "worker"), None,
                          f"te_{columns.source}_{key}", None if hours is None else str(hours),
                          tried(lambda: _status(row, columns)) == "approved",
                          _cell(row, columns, "project") or None,
                          tried(lambda: _date(row, columns, "work_date")))


def _date(row: Row, columns: Columns, name: str) -> str:
    given = _required(row, columns, name)
    try:
        return datetime.strptime(given, columns.date_format).date().isoformat()
    except ValueError:
        try:
            return date.fromisoformat(given).isoformat()
        except ValueError:
            raise _Bad(f"{columns.headers.get(name)!r} is {given!r}, not a date like "
                       f"{date(2026, 3, 31).strftime(columns.date_format)}") from None


def _decimal(row: Row, columns: Columns, name: str) -> Decimal:
    given = _required(row, columns, name)
    text = given.replace(" ", "")
    if columns.decimal_comma:
        text = text.replace(".", "").replace(",", ".")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise _Bad(f"{columns.headers.get(name)!r} is {given!r}, not a number") from None
    if not value.is_finite():
        raise _Bad(f"{columns.headers.get(name)!r} is {given!r}, not a number")
    return value


def _hours(row: Row, columns: Columns) -> Decimal:
    """Decimal hours, or ``h:mm`` (7:30 is 7.50)."""
    given = _cell(row, columns, "hours")
    if ":" in given:
        hours, _, minutes = given.partition(":")
        if hours.isdigit() and minutes.isdigit() and len(minutes) == 2 and int(minutes) < 60:
            return (Decimal(hours) + Decimal(minutes) / 60).quantize(Decimal("0.01"))
        raise _Bad(f"{columns.headers.get('hours')!r} is {given!r}, not hours like 7.5 or 7:30")
    return _decimal(row, columns, "hours")


def _billable(row: Row, columns: Columns) -> bool:
    given = _cell(row, columns, "billable").lower()
    if not given or given in TRUE:
        return True
    if given in FALSE:
        return False
    raise _Bad(f"{columns.headers.get('billable')!r} is {given!r}, not yes or no")


def _status(row: Row, columns: Columns) -> str:
    """An export without a status column is of approved time."""
    given = _cell(row, columns, "status").lower()
    if not given:
        return "approved"
    status = STATUSES.get(given)
    if status is None:
        raise _Bad(f"{columns.headers.get('status')!r} is {given!r}; known: "
                   f"{', '.join(sorted(STATUSES))}")
    return status
