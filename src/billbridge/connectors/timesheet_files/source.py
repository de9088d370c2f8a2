"""Timesheet files as a polled ``Source``: every CSV or XLSX file in the
folder, oldest first, each row once.

The cursor (JSON) names the files read to their end by content digest and
the column map they were read with, and where the file being read stands
(its digest and the last line stored), so a poll cut off mid-file resumes
after its last committed page, and a file sent again, under any name, is not
read again. A file whose content changed is a new file; a changed column map
reads the folder again, so rows it could not map before map now. Rows read
again all the same (an overlapping export) are the same events, which the
inbox drops (see mapping.py for row identity).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from billbridge.connectors.base import PollPage
from billbridge.connectors.contracts import ContractWatch, Drift, name_drift
from billbridge.connectors.timesheet_files.client import SheetFile, TimesheetFolder
from billbridge.connectors.timesheet_files.contract import contract
from billbridge.connectors.timesheet_files.mapping import (
    SOURCE,
    Columns,
    key_columns,
    row_event,
)
from billbridge.domain.config import Configuration

CURSOR_VERSION = 1


class FileSource:
    def __init__(self, folder: TimesheetFolder, *, name: str = SOURCE,
                 options: Mapping[str, Any] | None = None, page_size: int = 500) -> None:
        self.name = name
        self.folder = folder
        self.options = dict(options or {})
        self.columns = Columns.of(self.options, source=name)
        self.page_size = max(1, page_size)
        self.contracts = ContractWatch(contract(self.columns))

    @property
    def drop_folder(self) -> Path:
        """Where files for this source are put (the hub's upload door too)."""
        return self.folder.folder

    def configure(self, configuration: Configuration) -> None:
        """Take the governed column map, ``field_mappings[<connection>]``, of the
        active configuration (the engine calls this before each poll)."""
        governed = configuration.field_mappings.get(self.name)
        self.columns = Columns.of(self.options, governed, source=self.name)
        self.contracts.contract = contract(self.columns)

    def poll(self, cursor: str | None) -> Iterator[PollPage]:
        state = _load(cursor)
        files = self.folder.files()
        read_as = self.columns.fingerprint()
        present = {f"{f.digest}:{read_as}" for f in files}
        # Forget files no longer in the folder (or read with another column
        # map): the cursor stays small; a file read again yields repeats the
        # inbox drops.
        state["done"] = {d: n for d, n in state["done"].items() if d in present}
        for sheet in files:
            if f"{sheet.digest}:{read_as}" not in state["done"]:
                yield from self._read(sheet, state, read_as)

    def read_file(self, name: str, cursor: str | None) -> tuple[list[tuple[int, Any]], str]:
        """Every row of the folder's file ``name`` now, as (line, event or
        ``Malformed``), with ``cursor`` marking that file read, so the next
        poll skips it (an upload read at once)."""
        sheet = self.folder.file(name)
        state = _load(cursor)
        rows = list(self._events(sheet))
        state["done"][f"{sheet.digest}:{self.columns.fingerprint()}"] = sheet.name
        if (state.get("at") or {}).get("digest") == sheet.digest:
            state["at"] = None
        return rows, _dump(state)

    def _read(self, sheet: SheetFile, state: dict[str, Any], read_as: str
              ) -> Iterator[PollPage]:
        at = state.get("at") or {}
        after = int(at.get("line", 0)) if at.get("digest") == sheet.digest else 0
        events: list[Any] = []
        for line, event in self._events(sheet):
            if line <= after:
                continue
            events.append(event)
            if len(events) >= self.page_size:
                state["at"] = {"digest": sheet.digest, "line": line}
                yield PollPage(events, _dump(state))
                events = []
        state["at"] = None
        state["done"][f"{sheet.digest}:{read_as}"] = sheet.name
        yield PollPage(events, _dump(state))

    def _events(self, sheet: SheetFile) -> Iterator[tuple[int, Any]]:
        """(line, event or ``Malformed``) per data row of ``sheet``, in order;
        a row's occurrence among identical keys counts from the file's top."""
        seen: Counter[tuple[str, ...]] = Counter()
        drift: Drift | None = None
        for row in self.folder.rows(sheet):
            if drift is None:  # the file's header against the column map, once a file
                kind = "expense" if self.columns.is_expense_sheet(row.cells) else "time_entry"
                drift = self.contracts.read(kind, {k: v for k, v in row.cells.items()
                                                   if k != "\x00extra"})
            key = key_columns(row, self.columns)
            occurrence = seen[key]
            seen[key] += 1
            yield row.line, name_drift(row_event(row, sheet, self.columns, occurrence), drift)


def _load(cursor: str | None) -> dict[str, Any]:
    if not cursor:
        return {"v": CURSOR_VERSION, "done": {}, "at": None}
    data = json.loads(cursor)
    return {"v": CURSOR_VERSION, "done": dict(data.get("done") or {}), "at": data.get("at")}


def _dump(state: dict[str, Any]) -> str:
    return json.dumps(state, sort_keys=True)
