"""The ERP's answers read back as a polled ``Source``: its acknowledgement
files (one per imported drop file: each line posted with the ERP's document
number, or rejected with its reason) and its receivables status exports
(invoices issued, paid, voided). Both carry the ERP's sequence number in
their names; the cursor is the last one read, so each file is read once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from billbridge.connectors.base import Malformed, PollPage
from billbridge.connectors.filedrop import mapping
from billbridge.connectors.filedrop.target import FileDropTarget
from billbridge.connectors.paging import PageGuard


class FileDropSource:
    def __init__(self, target: FileDropTarget, *, name: str = "filedrop",
                 exports: str = "ack") -> None:
        self.name = name
        self.target = target
        self.drop = target.drop
        self.exports = exports

    def poll(self, cursor: str | None) -> Iterator[PollPage]:
        last = int(cursor) if cursor and cursor.isdigit() else 0
        guard = PageGuard(f"{self.name} acknowledgements")
        names = sorted((n for n in self.drop.list(self.exports)
                        if (mapping.sequence_of(n) or 0) > last),
                       key=lambda n: mapping.sequence_of(n) or 0)
        files = self.target.data_files() if names else {}
        for name in names:
            sequence = mapping.sequence_of(name)
            guard.once(sequence, name)
            rows = mapping.csv_rows(self.drop.read(f"{self.exports}/{name}"))
            events: list[dict[str, Any] | Malformed]
            if name.startswith("ARSTATUS_"):
                events = [mapping.status_event(r, self.name) for r in rows]
            else:
                # an invoice's lines share its key: one event per invoice
                first: dict[str, mapping.Row] = {}
                for row in rows:
                    first.setdefault(row.get("key", ""), row)
                events = mapping.invoice_events(self.target.acked_lines(name, files, "INV"),
                                                list(first.values()), self.name)
            yield PollPage(events, str(sequence))
