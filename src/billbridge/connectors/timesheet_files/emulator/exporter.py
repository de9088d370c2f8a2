"""A time system whose only interface is a file: it exports timesheets (and
expense sheets) as CSV or XLSX into a folder, written to a temporary name
and renamed, as a careful export job does. The demo and the tests use it."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from billbridge.connectors.timesheet_files.mapping import DEFAULT_COLUMNS

TIMESHEET = [DEFAULT_COLUMNS[k] for k in ("id", "worker", "project", "task", "work_date",
                                          "hours", "billable", "notes", "status")]


class TimesheetExporter:
    """Writes exports into ``folder``; ``export`` returns the file's path."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def export(self, name: str, rows: Sequence[Mapping[str, Any]],
               header: Sequence[str] = TIMESHEET, *, mtime: int | None = None) -> Path:
        """``rows`` (header → value) as ``name`` (.csv or .xlsx)."""
        path = self.folder / name
        data = (_xlsx(header, rows) if path.suffix.lower() == ".xlsx"
                else _csv(header, rows).encode())
        return self.write(name, data, mtime=mtime)

    def write(self, name: str, data: bytes, *, mtime: int | None = None) -> Path:
        """Raw bytes as ``name``, atomically (a reader never sees half a file)."""
        path = self.folder / name
        temporary = self.folder / f".{name}.part"
        temporary.write_bytes(data)
        if mtime is not None:
            os.utime(temporary, (mtime, mtime))
        temporary.replace(path)
        return path


def _csv(header: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if row.get(h) is None else str(row.get(h)) for h in header])
    return out.getvalue()


def _xlsx(header: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(list(header))
    for row in rows:
        sheet.append([row.get(h) for h in header])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()
