"""The legacy ERP at the other end of the drop folder: its import job takes
each file whose manifest has arrived, in the order they arrived, checks the
manifest (checksum, counts, totals), posts every line and writes an
acknowledgement; its receivables export writes an invoice's status when it
is paid. Like the real import jobs it stands for, it posts every file it is
given: the same charge in two files is posted twice (only a file already
imported, by name, is not imported again)."""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from billbridge.connectors.filedrop import mapping
from billbridge.connectors.filedrop.mapping import Manifest, Row


@dataclass
class ErpInvoice:
    invoice: str  # the hub's invoice id, as the file gave it
    erp_id: str  # the ERP's own invoice number
    customer: str
    total: Decimal
    currency: str
    lines: int
    status: str = "issued"
    paid: Decimal = Decimal(0)


@dataclass
class Ledger:
    customers: dict[str, Row] = field(default_factory=dict)  # master data: by number
    projects: dict[str, Row] = field(default_factory=dict)
    journal: list[dict[str, Any]] = field(default_factory=list)  # every line posted
    invoices: list[ErpInvoice] = field(default_factory=list)  # every invoice posted


class LegacyErp:
    """``import_once()`` runs the import job; ``start()`` runs it every
    ``interval`` seconds in a thread (the demo's nightly job, made quick)."""

    def __init__(self, root: Path, *, inbound: str = "in", acks: str = "ack",
                 interval: float = 0.1) -> None:
        self.root, self.inbound, self.acks = root, inbound, acks
        self.interval = interval
        self.ledger = Ledger()
        self.imported: list[str] = []  # data files, in import order
        self.refused: dict[str, str] = {}  # data file → why its manifest did not match
        self._sequence = 0
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        for folder in (inbound, acks):
            (root / folder).mkdir(parents=True, exist_ok=True)

    # -- the import job ------------------------------------------------------------------
    def import_once(self) -> int:
        """Import every complete file not imported yet; how many."""
        with self._lock:
            folder = self.root / self.inbound
            manifests = sorted(folder.glob(f"{mapping.PREFIX}_*.manifest.csv"),
                               key=lambda p: (p.stat().st_mtime_ns, p.name))
            count = 0
            for path in manifests:
                if path.name in self.refused:
                    continue
                raw = path.read_bytes()
                try:
                    manifest = Manifest.parse(raw)
                except (ValueError, TypeError, KeyError, StopIteration):
                    self.refused[path.name] = f"unreadable manifest {raw!r}"
                    continue
                if manifest.file in self.imported or manifest.file in self.refused:
                    continue
                data_path = folder / manifest.file
                if not data_path.is_file():
                    continue  # the manifest came first; the next run finds the file
                self._import(manifest, data_path.read_bytes())
                count += 1
            return count

    def _import(self, manifest: Manifest, data: bytes) -> None:
        actual = Manifest.of(manifest.file, data)
        if actual != manifest:
            self.refused[manifest.file] = f"manifest says {manifest}, the file is {actual}"
            self._ack(manifest.file, [{"key": "*", "status": "REJECTED", "erp_id": "",
                                       "message": "manifest does not match the file"}])
            return
        rows = mapping.parse(manifest.kind, data, manifest.layout)
        post = {"CUST": self._customers, "PROJ": self._projects, "JRNL": self._journal,
                "INV": self._invoices}[manifest.kind]
        self.imported.append(manifest.file)
        self._ack(manifest.file, post(rows))

    def _ack(self, data_file: str, rows: list[dict[str, Any]]) -> None:
        self._sequence += 1
        at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._write(self.acks, mapping.ack_name(self._sequence, data_file), mapping.csv_bytes(
            mapping.ACK_COLUMNS, [{**r, "posted_at": at} for r in rows]))

    def _write(self, folder: str, name: str, data: bytes) -> None:
        temporary = self.root / folder / f".{name}.part"
        temporary.write_bytes(data)
        temporary.replace(self.root / folder / name)

    @staticmethod
    def _posted(row: Row, erp_id: str) -> dict[str, Any]:
        return {"key": row["key"], "status": "POSTED", "erp_id": erp_id, "message": ""}

    @staticmethod
    def _rejected(row: Row, message: str) -> dict[str, Any]:
        return {"key": row["key"], "status": "REJECTED", "erp_id": "", "message": message}

    def _customers(self, rows: list[Row]) -> list[dict[str, Any]]:
        for row in rows:
            self.ledger.customers[row["customer"]] = row
        return [self._posted(r, r["customer"]) for r in rows]

    def _projects(self, rows: list[Row]) -> list[dict[str, Any]]:
        out = []
        for row in rows:
            if row["customer"] and row["customer"] not in self.ledger.customers:
                out.append(self._rejected(row, f"customer {row['customer']} does not exist"))
                continue
            self.ledger.projects[row["project"]] = row
            out.append(self._posted(row, row["project"]))
        return out

    def _journal(self, rows: list[Row]) -> list[dict[str, Any]]:
        out = []
        for row in rows:
            if row["project"] not in self.ledger.projects:
                out.append(self._rejected(row, f"project {row['project']} does not exist"))
                continue
            document = f"JV{len(self.ledger.journal) + 1:07d}"
            self.ledger.journal.append({**row, "document": document})
            out.append(self._posted(row, document))
        return out

    def _invoices(self, rows: list[Row]) -> list[dict[str, Any]]:
        by_key: dict[str, list[Row]] = defaultdict(list)
        for row in rows:
            by_key[row["key"]].append(row)
        out = []
        for lines in by_key.values():
            head = lines[0]
            if head["customer"] not in self.ledger.customers:
                out += [self._rejected(r, f"customer {head['customer']} does not exist")
                        for r in lines]
                continue
            number = f"AR{len(self.ledger.invoices) + 1:07d}"
            self.ledger.invoices.append(ErpInvoice(head["invoice"], number, head["customer"],
                                                   Decimal(head["total"]), head["currency"],
                                                   len(lines)))
            out += [self._posted(r, number) for r in lines]
        return out

    # -- what finance does in the ERP ------------------------------------------------------
    def live_journal(self) -> list[dict[str, Any]]:
        """Journal lines posted and not reversed."""
        with self._lock:
            undone = {r["reverses"] for r in self.ledger.journal if r.get("reverses")}
            return [r for r in self.ledger.journal
                    if not r.get("reverses") and r["key"] not in undone]

    def pay(self, erp_id: str) -> None:
        """The customer pays the invoice in full; the status export says so."""
        with self._lock:
            invoice = next(i for i in self.ledger.invoices if i.erp_id == erp_id)
            invoice.status, invoice.paid = "paid", invoice.total
            self._sequence += 1
            self._write(self.acks, mapping.status_name(self._sequence), mapping.csv_bytes(
                mapping.STATUS_COLUMNS, [{
                    "invoice": invoice.invoice, "erp_id": invoice.erp_id, "status": "paid",
                    "amount_paid": invoice.paid,
                    "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}]))

    # -- the job's schedule ------------------------------------------------------------------
    def start(self) -> LegacyErp:
        def run() -> None:
            while not self._stop.wait(self.interval):
                self.import_once()

        self._thread = threading.Thread(target=run, name="legacy-erp-import", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
