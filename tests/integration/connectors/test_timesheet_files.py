"""Timesheet files (CSV, XLSX) as a time source, polled into a real store: bad
rows kept with their line number and raw text, a file sent again or an
overlapping export changing nothing, a poll cut off mid-file resuming after
its last page, and the column map taken from the active configuration."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from billbridge.connectors.base import Connection, PollPage
from billbridge.connectors.registry import connector
from billbridge.connectors.timesheet_files.client import TimesheetFolder
from billbridge.connectors.timesheet_files.emulator import TimesheetExporter
from billbridge.connectors.timesheet_files.source import FileSource
from billbridge.engine import config_store
from billbridge.engine.clock import SystemClock
from billbridge.engine.sync import sync
from billbridge.store.db import make_engine, migrate
from billbridge.store.tables import exceptions, inbox
from conftest import CONFIG

HEADER = ["Entry ID", "Employee", "Project", "Task", "Date", "Hours", "Billable", "Notes",
          "Status"]
MTIME = int(datetime(2026, 4, 1, 6, tzinfo=UTC).timestamp())


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    migrate(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def exports(tmp_path: Path) -> TimesheetExporter:
    return TimesheetExporter(tmp_path / "drop")


def file_source(exports: TimesheetExporter, **options: Any) -> FileSource:
    connection = Connection("csv", "csv", f"file://{exports.folder}", options=options)
    made = connector("csv").source
    assert made is not None
    source = made(connection)
    assert isinstance(source, FileSource)
    return source


def entry(n: int, **changes: Any) -> dict[str, Any]:
    row = {"Entry ID": f"E{n}", "Employee": "w-alice" if n % 2 else "w-bob",
           "Project": "GLX-001", "Task": "dev", "Date": f"2026-03-{n % 28 + 1:02d}",
           "Hours": f"{n % 8 + 1}.25", "Billable": "yes", "Notes": f"work {n}",
           "Status": "Approved"}
    return {**row, **changes}


BAD: dict[int, dict[str, Any]] = {
    # row number → what is wrong with it (12 rows, each in its own way)
    17: {"Hours": "seven"}, 503: {"Date": "2026-02-30"}, 1000: {"Employee": ""},
    2222: {"Project": ""}, 3001: {"Hours": "25"}, 4096: {"Billable": "perhaps"},
    5000: {"Status": "Lost"}, 6001: {"Hours": "-1"}, 7007: {"Date": "31/03/2026"},
    8008: {"Hours": "7:75"}, 9001: {"Hours": "NaN"}, 9999: {"Hours": ""},
}


def counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        events = conn.execute(select(func.count()).select_from(inbox)).scalar_one()
        opened = conn.execute(select(func.count()).select_from(exceptions)).scalar_one()
    return int(events), int(opened)


def test_ten_thousand_rows_with_twelve_bad_import_once_naming_each_bad_line(
        store: Engine, exports: TimesheetExporter) -> None:
    rows = [entry(n, **BAD.get(n, {})) for n in range(1, 10_001)]
    exports.export("march.csv", rows, HEADER, mtime=MTIME)
    source = file_source(exports)
    result = sync(store, source, SystemClock())
    assert (result.accepted, result.malformed) == (9_988, 12)
    with store.connect() as conn:
        found = conn.execute(select(exceptions.c.reason, exceptions.c.message,
                                    exceptions.c.raw)).all()
    assert {r.reason for r in found} == {"MALFORMED_PAYLOAD"}
    # The header is line 1, so entry n is on line n + 1; each raw text is the line itself.
    lines = sorted(int(r.message.split("march.csv line ")[1].split(":")[0]) for r in found)
    assert lines == sorted(n + 1 for n in BAD)
    by_line = {json.loads(r.raw)["line"]: json.loads(r.raw)["text"] for r in found}
    assert by_line[18].startswith("E17,w-alice,GLX-001,dev,") and "seven" in by_line[18]

    # The same file again, under another name, and a poll of the same folder: nothing new.
    exports.write("march-resent.csv", (exports.folder / "march.csv").read_bytes())
    again = sync(store, file_source(exports), SystemClock())
    assert (again.accepted, again.malformed) == (0, 0)
    assert counts(store) == (10_000, 12)


def test_an_overlapping_export_in_xlsx_adds_only_its_new_and_edited_rows(
        store: Engine, exports: TimesheetExporter) -> None:
    exports.export("week-1.csv", [entry(n) for n in range(1, 11)], HEADER, mtime=MTIME)
    assert sync(store, file_source(exports), SystemClock()).accepted == 10
    # The next export overlaps: rows 6-10 again (row 8 edited: 3 hours), rows 11-12 new.
    overlap = [entry(n) for n in range(6, 13)]
    overlap[2] = entry(8, Hours="3")
    exports.export("week-2.xlsx", overlap, HEADER, mtime=MTIME + 3600)
    second = sync(store, file_source(exports), SystemClock())
    assert (second.accepted, second.duplicates, second.malformed) == (3, 4, 0)
    with store.connect() as conn:
        edited = [json.loads(p) for p in conn.execute(select(inbox.c.payload).where(
            inbox.c.event_id.like("time_entry:E8:%"))).scalars()]
    assert sorted(e["data"]["hours"] for e in edited) == ["1.25", "3.00"]
    newer = max(edited, key=lambda e: e["data"]["source_version"])
    assert newer["data"]["hours"] == "3.00"


class Cut(Exception):
    pass


def test_a_poll_cut_off_mid_file_resumes_after_its_last_stored_page(
        store: Engine, exports: TimesheetExporter) -> None:
    exports.export("big.csv", [entry(n) for n in range(1, 1001)], HEADER, mtime=MTIME)
    source = file_source(exports, page_size=100)
    real = source.poll
    pages = 0

    def cut_after_three(cursor: str | None) -> Iterator[PollPage]:
        nonlocal pages
        for page in real(cursor):
            yield page
            pages += 1
            if pages == 3:
                raise Cut  # the process dies after its third page was stored

    source.poll = cut_after_three  # type: ignore[method-assign]
    with pytest.raises(Cut):
        sync(store, source, SystemClock())
    assert counts(store)[0] == 300
    source.poll = real  # type: ignore[method-assign]
    rest = sync(store, source, SystemClock())
    assert (rest.accepted, rest.duplicates) == (700, 0)  # nothing read twice
    assert counts(store) == (1000, 0)


def test_the_column_map_is_the_active_configurations(
        store: Engine, exports: TimesheetExporter) -> None:
    header = ["Consultant", "Project", "Day", "Time"]
    exports.export("other-layout.csv", [
        {"Consultant": "w-alice", "Project": "GLX-001", "Day": "31.03.2026", "Time": "7,5"}],
        header, mtime=MTIME)
    source = file_source(exports)
    first = sync(store, source, SystemClock())
    assert (first.accepted, first.malformed) == (0, 1)  # "Employee" is not in this layout

    document = {**CONFIG, "field_mappings": {"csv": {
        "worker": "Consultant", "work_date": "Day", "hours": "Time",
        "date_format": "%d.%m.%Y", "decimal_comma": "true"}}}
    with store.begin() as conn:
        config_store.activate(conn, document, actor="test", at=datetime.now(UTC))
    # The approved map reads the folder again: the row it could not map maps now.
    second = sync(store, source, SystemClock())
    assert (second.accepted, second.malformed) == (1, 0)
    with store.connect() as conn:
        payload = json.loads(conn.execute(select(inbox.c.payload).where(
            inbox.c.event_type == "time_entry.upserted")).scalar_one())
    assert payload["data"]["work_date"] == "2026-03-31"
    assert payload["data"]["hours"] == "7.50"
    assert payload["data"]["status"] == "approved"  # no status column: an export of approved time
    assert sync(store, source, SystemClock()).pages == 0  # read with this map: not again


def test_a_folder_that_is_not_there_is_one_clear_error(tmp_path: Path) -> None:
    from billbridge.connectors.base import PermanentError

    source = FileSource(TimesheetFolder(tmp_path / "nowhere"))
    with pytest.raises(PermanentError, match="does not exist: create it"):
        list(source.poll(None))


def test_a_file_whose_header_departs_from_the_column_map_is_drift_once_and_named(
        tmp_path: Path) -> None:
    """The column map is the contract: a column it does not name and a required
    one missing are one drift for the file (not one per row), and the rows that
    cannot be read without the missing column name it."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "march.csv").write_text(
        "Entry ID,Employee,Date,Hours,Region\n"
        "1,w-alice,2026-03-02,8,EMEA\n2,w-bob,2026-03-02,7.5,EMEA\n")
    source = FileSource(TimesheetFolder(folder))
    heard: list[Any] = []
    source.contracts.observer = heard.append
    events = [e for page in source.poll(None) for e in page.events]
    [drift] = heard
    assert {(f.field, f.kind.value) for f in drift.findings} == {
        ("Region", "unknown_field"), ("Project", "missing_required")}
    assert len(events) == 2 and all(
        "vendor drift: required field Project missing" in e.reason for e in events)
