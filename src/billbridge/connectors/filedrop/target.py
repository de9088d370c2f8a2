"""A legacy ERP's file interface as the ERP ``Target``: each batch is one
file per kind of record (customers, projects, the labour journal, invoices),
in CSV or the fixed-width layout, written under a temporary name and renamed
into the ERP's inbound folder, then its manifest (counts, totals, checksum),
which is what tells the ERP's import job the file is complete.

Exactly once, without help from the ERP (its import posts every file it is
given, twice if the same charge is in two files): a file's name comes from
the sorted keys of its commands, so the same batch sent again writes the
same file, never a second one; and a command sent again (``attempt > 1``),
perhaps in a batch grouped differently, is first looked for in the files
already dropped, by the key each line carries. A file found without its
manifest (the sender died between the rename and the manifest) gets its
manifest then, so it is imported once, as it was meant to be.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from billbridge.connectors.base import (
    IdempotencyMode,
    LivePosting,
    OutboundCommand,
    RecordResult,
    ResultStatus,
)
from billbridge.connectors.fields import Built, MappingError, build_each, posting_to_reverse
from billbridge.connectors.filedrop import mapping
from billbridge.connectors.filedrop.client import UNLIMITED, Drop
from billbridge.connectors.filedrop.mapping import KINDS, Manifest, Row
from billbridge.connectors.kinds import send_by_kind

ORDER = ("customer.upsert", "project.upsert", "time_charge.post", "time_charge.reverse",
         "invoice.create")
REFERENCES = {"time_charge.reverse": ("charge",)}
ANSWER = {"CUST": "customer", "PROJ": "project", "JRNL": "key", "INV": "invoice"}
"""The column whose value the hub keeps as the record's id at the ERP: the
customer number, the project code, the journal line's key, the invoice id
(the ERP's own invoice number arrives with its acknowledgement)."""


class FileDropTarget:
    references = REFERENCES

    def __init__(self, drop: Drop, *, name: str = "filedrop", layout: str = "csv",
                 max_batch: int = 500, inbound: str = "in", acks: str = "ack") -> None:
        if layout not in mapping.LAYOUTS:
            raise ValueError(f"{name}: layout must be one of {', '.join(mapping.LAYOUTS)}, "
                             f"not {layout!r}")
        self.name = name
        self.drop = drop
        self.layout = layout
        self.inbound, self.acks = inbound, acks
        self.max_batch = max(1, max_batch)
        self.rate_limit = UNLIMITED
        self.idempotency = IdempotencyMode.MARKER_LOOKUP
        self.concurrency = 1  # one writer: a folder is not a database
        self.found_on_resend = 0  # commands a resend found already dropped
        self.crash_hook: Callable[[str, str], None] | None = None  # tests: a process dying
        self._files: dict[str, list[Row]] = {}  # dropped files read so far (never change)
        builders: dict[str, Callable[[OutboundCommand], list[Row]]] = {
            "customer.upsert": lambda c: mapping.customer_rows(c.idempotency_key, c.payload),
            "project.upsert": lambda c: mapping.project_rows(c.idempotency_key, c.payload),
            "time_charge.post": lambda c: mapping.charge_rows(c.idempotency_key, c.payload),
            "invoice.create": lambda c: mapping.invoice_rows(c.idempotency_key, c.payload)}
        self._handlers = {kind: self._handler(kind, build) for kind, build in builders.items()}
        self._handlers["time_charge.reverse"] = self._reversals

    def send(self, batch: Sequence[OutboundCommand]) -> list[RecordResult]:
        return send_by_kind(batch, self._handlers, writes=lambda: self.drop.writes,
                            vendor="file drop", order=ORDER)

    def _handler(self, kind: str, build: Callable[[OutboundCommand], list[Row]]
                 ) -> Callable[[Sequence[OutboundCommand]], list[RecordResult]]:
        return lambda commands: self._drop(KINDS[kind], commands, build)

    def _reversals(self, commands: Sequence[OutboundCommand]) -> list[RecordResult]:
        originals = {key: row for key, (_file, row) in self._dropped("JRNL").items()}
        return self._drop("JRNL", commands, lambda c: mapping.reversal_rows(
            c.idempotency_key, posting_to_reverse(c, originals, what="journal line",
                                                  vendor="the drop folder")))

    # -- one file of one kind ----------------------------------------------------------
    def _drop(self, kind: str, commands: Sequence[OutboundCommand],
              build: Callable[[OutboundCommand], list[Row]]) -> list[RecordResult]:
        results: list[RecordResult] = []

        def checked(command: OutboundCommand) -> dict[str, Any]:
            rows = build(command)
            mapping.render(kind, rows, self.layout)  # a value too wide is this record's fault
            return {"rows": rows}

        mapped: Built = build_each(commands, checked, results)
        if any(c.attempt > 1 for c, _ in mapped):
            mapped = self._found(kind, mapped, results)
        if mapped:
            self._write(kind, mapped)
            results += [RecordResult.of(c, ResultStatus.APPLIED, m["rows"][0][ANSWER[kind]])
                        for c, m in mapped]
        return results

    def _found(self, kind: str, mapped: Built, results: list[RecordResult]) -> Built:
        """Answer the resent commands an earlier attempt dropped; the rest."""
        dropped = self._dropped(kind)
        rest: Built = []
        for command, built in mapped:
            if command.attempt > 1 and command.idempotency_key in dropped:
                self.found_on_resend += 1
                _file, row = dropped[command.idempotency_key]
                results.append(RecordResult.of(command, ResultStatus.APPLIED, row[ANSWER[kind]]))
            else:
                rest.append((command, built))
        return rest

    def _write(self, kind: str, mapped: Built) -> None:
        name = mapping.file_name(kind, [c.idempotency_key for c, _ in mapped], self.layout)
        data = mapping.render(kind, [row for _, m in mapped for row in m["rows"]], self.layout)
        temporary = self.drop.write_temporary(self.inbound, name, data)
        self._crash("written", name)
        self.drop.publish(temporary, self.inbound, name)
        self._crash("renamed", name)
        self._manifest(name, data)

    def _manifest(self, name: str, data: bytes) -> None:
        manifest = mapping.manifest_name(name)
        temporary = self.drop.write_temporary(self.inbound, manifest,
                                              Manifest.of(name, data).render())
        self.drop.publish(temporary, self.inbound, manifest)

    def _crash(self, stage: str, name: str) -> None:
        if self.crash_hook is not None:
            self.crash_hook(stage, name)

    # -- what is in the drop folder ----------------------------------------------------
    def _rows(self, name: str) -> list[Row]:
        if name not in self._files:
            self._files[name] = mapping.parse(mapping.kind_of(name),
                                              self.drop.read(f"{self.inbound}/{name}"),
                                              mapping.layout_of(name))
        return self._files[name]

    def _dropped(self, kind: str) -> dict[str, tuple[str, Row]]:
        """Every line of ``kind`` in the inbound folder, by key (a line's first
        file wins); a data file without its manifest gets it now."""
        names = self.drop.list(self.inbound)
        present = set(names)
        found: dict[str, tuple[str, Row]] = {}
        for name in names:
            if not mapping.is_data_file(name) or mapping.kind_of(name) != kind:
                continue
            if mapping.manifest_name(name) not in present:
                self._manifest(name, self.drop.read(f"{self.inbound}/{name}"))
            for row in self._rows(name):
                found.setdefault(row["key"], (name, row))
        return found

    def data_files(self) -> dict[str, str]:
        """The data files in the inbound folder, by name without extension
        (as an acknowledgement names them)."""
        return {n.rsplit(".", 1)[0]: n for n in self.drop.list(self.inbound)
                if mapping.is_data_file(n)}

    def acked_lines(self, ack: str, files: dict[str, str], kind: str) -> list[Row]:
        """The lines of the ``kind`` file ``ack`` acknowledges (none if it is of another kind)."""
        data_file = files.get(mapping.acked_file(ack))
        if data_file is None or mapping.kind_of(data_file) != kind:
            return []
        return self._rows(data_file)

    def acknowledged(self, kind: str) -> tuple[list[Row], dict[str, Row]]:
        """The ERP's acknowledgements of ``kind`` files: the lines of those
        files, and each acknowledgement line by key."""
        files = self.data_files()
        lines: list[Row] = []
        acks: dict[str, Row] = {}
        for ack in self.drop.list(self.acks):
            if not ack.startswith("ACK_") or mapping.sequence_of(ack) is None:
                continue
            found = self.acked_lines(ack, files, kind)
            if not found:
                continue
            lines += found
            for row in mapping.csv_rows(self.drop.read(f"{self.acks}/{ack}")):
                acks.setdefault(row["key"], row)
        return lines, acks

    def live_postings(self, charge_ids: Sequence[str] | None = None) -> list[LivePosting]:
        """Labour the ERP says it posted: the journal lines its acknowledgements
        confirm, less the reversed ones."""
        lines, acks = self.acknowledged("JRNL")
        posted: Mapping[str, str] = {k: a["erp_id"] for k, a in acks.items()
                                     if a.get("status") == "POSTED"}
        wanted = None if charge_ids is None else set(charge_ids)
        return [p for p in mapping.live_labour(lines, posted)
                if wanted is None or p.charge in wanted]


__all__ = ["FileDropTarget", "MappingError"]
