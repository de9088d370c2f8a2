"""One timesheet or expense row → a canonical event, or Malformed naming the
file, the line and what to fix (connectors/timesheet_files/mapping.py)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from billbridge.connectors.base import Malformed
from billbridge.connectors.timesheet_files.client import Row, SheetFile
from billbridge.connectors.timesheet_files.mapping import DEFAULT_COLUMNS, Columns, row_event

SHEET = SheetFile("march.csv", Path("march.csv"), "d" * 64, 1_775_000_000)


def row(line: int = 2, **cells: str) -> Row:
    base = {"Employee": "w-alice", "Project": "GLX-001", "Task": "dev", "Date": "2026-03-02",
            "Hours": "7.5", "Notes": "design"}
    merged = {**base, **cells}
    return Row(line, ",".join(merged.values()), merged)


def data(event: dict[str, Any] | Malformed) -> dict[str, Any]:
    assert isinstance(event, dict), event
    result: dict[str, Any] = event["data"]
    return result


@pytest.mark.parametrize(("given", "hours"), [("7.5", "7.50"), ("7:30", "7.50"),
                                              ("0:45", "0.75"), ("8", "8.00")])
def test_hours_as_decimals_or_hours_and_minutes(given: str, hours: str) -> None:
    found = data(row_event(row(Hours=given), SHEET, Columns(), 0))["hours"]
    assert Decimal(found) == Decimal(hours)


def test_decimal_comma_and_a_date_format_from_the_column_map() -> None:
    columns = Columns.of({}, {"date_format": "%d/%m/%Y", "decimal_comma": "true"})
    found = data(row_event(row(Hours="7,25", Date="02/03/2026", Notes="x"), SHEET,
                           columns, 0))
    assert found["work_date"] == "2026-03-02"
    assert Decimal(found["hours"]) == Decimal("7.25")
    assert found["status"] == "approved"


@pytest.mark.parametrize(("cells", "says"), [
    ({"Hours": "seven"}, "'Hours' is 'seven', not a number"),
    ({"Hours": "7:75"}, "not hours like 7.5 or 7:30"),
    ({"Date": "2026-02-30"}, "'Date' is '2026-02-30', not a date like 2026-03-31"),
    ({"Employee": ""}, "'Employee' is empty"),
    ({"Billable": "perhaps"}, "'Billable' is 'perhaps', not yes or no"),
    ({"Status": "Lost"}, "'Status' is 'lost'; known: approved, open, pending, rejected"),
    ({"Hours": "25"}, "hours"),
])
def test_a_bad_row_is_malformed_naming_the_file_line_and_what_to_fix(
        cells: dict[str, str], says: str) -> None:
    found = row_event(row(line=41, **cells), SHEET, Columns(), 0)
    assert isinstance(found, Malformed)
    assert found.reason.startswith("march.csv line 41: ")
    assert says in found.reason
    assert found.raw["line"] == 41 and found.raw["text"] == row(line=41, **cells).text


def test_the_same_row_is_the_same_event_and_an_edit_is_a_new_version_of_the_same_entry() -> None:
    first = row_event(row(), SHEET, Columns(), 0)
    again = row_event(row(), SheetFile("other.xlsx", Path("other.xlsx"), "e" * 64, 1), Columns(), 0)
    edited = row_event(row(Hours="6"), SHEET, Columns(), 0)
    assert isinstance(first, dict) and isinstance(again, dict) and isinstance(edited, dict)
    assert first["id"] == again["id"]  # the file it came in does not matter
    assert edited["id"] != first["id"]
    assert data(edited)["id"] == data(first)["id"]  # the same entry, a new version
    twin = row_event(row(), SHEET, Columns(), 1)  # the second identical block of the day
    assert isinstance(twin, dict) and data(twin)["id"] != data(first)["id"]


def test_an_id_column_names_the_entry_and_workers_map_names_to_ids() -> None:
    columns = Columns.of({"workers": '{"Alice Ng": "w-alice"}'})
    found = row_event(row(Employee="Alice Ng", **{"Entry ID": "TS-9/1"}), SHEET, columns, 0)
    assert data(found)["id"] == "te_csv_TS-9_1" and data(found)["worker"] == "w-alice"
    unknown = row_event(row(Employee="Zed"), SHEET, columns, 0)
    assert isinstance(unknown, Malformed) and "unknown employee 'Zed'" in unknown.reason
    # Its hours are leakage the hub counts, with the mapping to add (D72).
    person = unknown.unmapped
    assert person is not None and (person.connection, person.user) == ("csv", "Zed")
    assert person.entry.startswith("te_csv_") and person.hours is not None


def test_an_expense_sheet_is_known_by_its_amount_column() -> None:
    cells = {"Amount": "120.40", "Currency": "eur", "Category": "Travel", "Date": "2026-03-03"}
    found = row_event(row(**cells), SHEET, Columns(), 0)
    assert isinstance(found, dict) and found["type"] == "expense.upserted"
    assert (data(found)["amount"], data(found)["currency"]) == ("120.40", "EUR")
    assert set(DEFAULT_COLUMNS) >= {"amount", "currency", "category"}
