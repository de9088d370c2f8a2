"""The only code that reads timesheet files: a folder a time tool or an
export job drops CSV and XLSX files into (the "vendor API" of a file
interface). Each file is read as a header row and data rows, each data row
with its line number and its raw text, so a bad row can be kept as it was."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from billbridge.connectors.base import PermanentError

SUFFIXES = (".csv", ".xlsx")


@dataclass(frozen=True, slots=True)
class Row:
    line: int  # 1-based, the header is line 1
    text: str  # the row as it stands in the file (XLSX: its cells as CSV)
    cells: dict[str, str]  # header → cell text, stripped


@dataclass(frozen=True, slots=True)
class SheetFile:
    name: str
    path: Path
    digest: str  # sha256 of the bytes: a file is the same file by content, not by name
    mtime: int  # whole seconds since the epoch


class TimesheetFolder:
    """A folder of timesheet exports; ``files`` lists them oldest first."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def files(self) -> list[SheetFile]:
        if not self.folder.is_dir():
            raise PermanentError(f"the timesheet folder {self.folder} does not exist: create "
                                 "it, or point the connection at the folder the exports land in",
                                 code="FOLDER_MISSING")
        found = []
        for path in self.folder.iterdir():
            if path.suffix.lower() in SUFFIXES and path.is_file() and not path.name.startswith("."):
                found.append(self.file(path.name))
        return sorted(found, key=lambda f: (f.mtime, f.name))

    def file(self, name: str) -> SheetFile:
        """The file ``name`` in the folder, as ``files`` lists it."""
        path = self.folder / name
        if Path(name).name != name or not path.is_file():
            raise PermanentError(f"{name} is not a file in {self.folder}", code="FILE_MISSING")
        data = path.read_bytes()
        return SheetFile(name, path, hashlib.sha256(data).hexdigest(), int(path.stat().st_mtime))

    def rows(self, sheet: SheetFile) -> Iterator[Row]:
        """The data rows of ``sheet``; a file with no header row has none."""
        if sheet.path.suffix.lower() == ".xlsx":
            yield from _xlsx_rows(sheet.path)
        else:
            yield from _csv_rows(sheet.path.read_bytes())


def _csv_rows(data: bytes) -> Iterator[Row]:
    text = data.decode("utf-8-sig", errors="replace")
    lines = text.splitlines()
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    for record in reader:
        line = reader.line_num
        if header is None:
            header = [h.strip() for h in record]
            continue
        if not any(cell.strip() for cell in record):
            continue  # a blank line
        raw = lines[line - 1] if 0 < line <= len(lines) else ",".join(record)
        yield Row(line, raw, _cells(header, record))


def _xlsx_rows(path: Path) -> Iterator[Row]:
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True, data_only=True)
    try:
        sheet = workbook.worksheets[0]
        header: list[str] | None = None
        for line, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            record = ["" if v is None else _cell_text(v) for v in values]
            if header is None:
                header = [h.strip() for h in record]
                continue
            if not any(cell.strip() for cell in record):
                continue
            out = io.StringIO()
            csv.writer(out, lineterminator="").writerow(record)
            yield Row(line, out.getvalue(), _cells(header, record))
    finally:
        workbook.close()


def _cell_text(value: Any) -> str:
    """An XLSX cell as the text a CSV export would hold: dates as ISO dates,
    numbers as written (an integral float without its ``.0``)."""
    from datetime import date, datetime

    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() \
            else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _cells(header: list[str], record: list[str]) -> dict[str, str]:
    cells = {name: (record[i].strip() if i < len(record) else "")
             for i, name in enumerate(header) if name}
    if len(record) > len(header):
        cells["\x00extra"] = ",".join(record[len(header):])
    return cells
