"""Canonical commands ↔ the rows of a drop file, the two layouts (CSV and
fixed-width), the manifest, and the ERP's acknowledgement and status files
back to canonical events. Pure: no I/O. docs/connectors/filedrop.md has the
columns, widths and file names.

A file holds one kind of record: ``CUST`` (customers), ``PROJ`` (projects),
``JRNL`` (the labour journal: one line per time charge; a reversal is the
same line with hours and amount negated) or ``INV`` (invoices, one line per
invoice line, the header's fields repeated). Every line carries ``key``: the
idempotency key of the command it comes from, so a resend finds what an
earlier attempt dropped, and the ERP's acknowledgement names each line.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from billbridge.connectors.base import LivePosting, Malformed
from billbridge.connectors.fields import MappingError, blank, explain
from billbridge.domain.records import Customer, Invoice, TimeCharge

PREFIX = "BB"
KINDS = {"customer.upsert": "CUST", "project.upsert": "PROJ", "time_charge.post": "JRNL",
         "time_charge.reverse": "JRNL", "invoice.create": "INV"}
COLUMNS: dict[str, tuple[tuple[str, int], ...]] = {
    # (column, width in the fixed-width layout); CSV uses the names as its header.
    "CUST": (("key", 64), ("customer", 40), ("name", 60), ("currency", 3), ("country", 2),
             ("tax_id", 20)),
    "PROJ": (("key", 64), ("project", 30), ("name", 60), ("customer", 40), ("status", 10)),
    "JRNL": (("key", 64), ("charge", 60), ("project", 30), ("task", 20), ("worker", 30),
             ("work_date", 10), ("hours", 10), ("amount", 14), ("currency", 3),
             ("billable", 1), ("reverses", 64)),
    "INV": (("key", 64), ("invoice", 60), ("customer", 40), ("project", 30), ("currency", 3),
            ("invoice_date", 10), ("line", 4), ("description", 80), ("quantity", 12),
            ("unit_price", 14), ("amount", 14), ("tax_code", 20), ("total", 14)),
}
LAYOUTS = {"csv": "csv", "fixed": "txt"}  # layout → file extension
MANIFEST_COLUMNS = ("file", "kind", "layout", "records", "lines", "hours_total", "amount_total",
                    "sha256")
ACK_COLUMNS = ("key", "status", "erp_id", "message", "posted_at")
STATUS_COLUMNS = ("invoice", "erp_id", "status", "amount_paid", "at")
Row = dict[str, str]


def file_name(kind: str, keys: Iterable[str], layout: str) -> str:
    """The batch's name, from its content: the sorted keys of its commands.
    The same batch sent again gets the same name, never a second file."""
    digest = hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:20]
    return f"{PREFIX}_{kind}_{digest}.{LAYOUTS[layout]}"


def manifest_name(data_file: str) -> str:
    return f"{data_file.rsplit('.', 1)[0]}.manifest.csv"


def kind_of(data_file: str) -> str:
    return data_file.split("_")[1]


def is_data_file(name: str) -> bool:
    return (name.startswith(f"{PREFIX}_") and not name.endswith(".manifest.csv")
            and name.rsplit(".", 1)[-1] in LAYOUTS.values())


# -- commands → rows ------------------------------------------------------------------
def _valid(model: Any, payload: Mapping[str, Any], kind: str) -> Any:
    try:
        return model.model_validate(dict(payload))
    except ValidationError as exc:
        raise MappingError(f"{kind}: {explain(exc)}") from None


def customer_rows(key: str, payload: Mapping[str, Any]) -> list[Row]:
    c: Customer = _valid(Customer, payload, "customer.upsert")
    return [{"key": key, "customer": c.id, "name": c.name, "currency": c.currency,
             "country": c.billing_country, "tax_id": c.tax_id or ""}]


def project_rows(key: str, payload: Mapping[str, Any]) -> list[Row]:
    code = payload.get("code")
    if blank(code):
        raise MappingError("project.upsert without a project code")
    return [{"key": key, "project": str(code), "name": str(payload.get("name") or code),
             "customer": str(payload.get("customer") or ""),
             "status": str(payload.get("status") or "active")}]


def charge_rows(key: str, payload: Mapping[str, Any]) -> list[Row]:
    c: TimeCharge = _valid(TimeCharge, payload, "time_charge.post")
    return [{"key": key, "charge": c.id, "project": c.project, "task": c.task or "",
             "worker": c.worker, "work_date": c.work_date.isoformat(), "hours": str(c.hours),
             "amount": str(c.amount), "currency": c.currency,
             "billable": "Y" if c.billable else "N", "reverses": ""}]


def reversal_rows(key: str, original: Row) -> list[Row]:
    """The journal line that undoes ``original`` (a line dropped before)."""
    return [{**original, "key": key, "hours": str(-Decimal(original["hours"])),
             "amount": str(-Decimal(original["amount"])), "reverses": original["key"]}]


def invoice_rows(key: str, payload: Mapping[str, Any]) -> list[Row]:
    bill: Invoice = _valid(Invoice, payload, "invoice.create")
    if not bill.lines:
        raise MappingError(f"invoice {bill.id} has no lines")
    day = (bill.invoice_date or bill.period_end)
    return [{"key": key, "invoice": bill.id, "customer": bill.customer,
             "project": bill.project or "", "currency": bill.currency,
             "invoice_date": day.isoformat() if day else "", "line": str(n),
             "description": line.description, "quantity": str(line.quantity),
             "unit_price": str(line.unit_price), "amount": str(line.amount),
             "tax_code": line.tax_code or "", "total": str(bill.total)}
            for n, line in enumerate(bill.lines, start=1)]


# -- rows ↔ bytes ---------------------------------------------------------------------
def render(kind: str, rows: Sequence[Row], layout: str) -> bytes:
    columns = COLUMNS[kind]
    if layout == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow([c for c, _ in columns])
        writer.writerows([[row.get(c, "") for c, _ in columns] for row in rows])
        return out.getvalue().encode()
    lines = []
    for row in rows:
        cells = []
        for column, width in columns:
            value = row.get(column, "")
            if len(value) > width:
                raise MappingError(f"{kind} {column} {value[:20]!r}… is longer than the "
                                   f"fixed-width layout's {width} characters",
                                   code="FIELD_TOO_LONG")
            cells.append(value.ljust(width))
        lines.append("".join(cells))
    return ("".join(f"{line}\r\n" for line in lines)).encode()


def parse(kind: str, data: bytes, layout: str) -> list[Row]:
    columns = COLUMNS[kind]
    text = data.decode()
    if layout == "csv":
        return [dict(r) for r in csv.DictReader(io.StringIO(text))]
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        row, at = {}, 0
        for column, width in columns:
            row[column] = line[at:at + width].rstrip()
            at += width
        rows.append(row)
    return rows


def layout_of(data_file: str) -> str:
    ext = data_file.rsplit(".", 1)[-1]
    return next(k for k, v in LAYOUTS.items() if v == ext)


# -- the manifest ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Manifest:
    file: str
    kind: str
    layout: str
    records: int  # commands (distinct keys)
    lines: int
    hours_total: Decimal
    amount_total: Decimal
    sha256: str

    @classmethod
    def of(cls, file: str, data: bytes) -> Manifest:
        kind, layout = kind_of(file), layout_of(file)
        rows = parse(kind, data, layout)
        return cls(file, kind, layout, len({r["key"] for r in rows}), len(rows),
                   sum((Decimal(r.get("hours") or 0) for r in rows), Decimal(0)),
                   sum((Decimal(r.get("amount") or 0) for r in rows), Decimal(0)),
                   hashlib.sha256(data).hexdigest())

    def render(self) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(MANIFEST_COLUMNS)
        writer.writerow([self.file, self.kind, self.layout, self.records, self.lines,
                         self.hours_total, self.amount_total, self.sha256])
        return out.getvalue().encode()

    @classmethod
    def parse(cls, data: bytes) -> Manifest:
        row = next(csv.DictReader(io.StringIO(data.decode())))
        return cls(row["file"], row["kind"], row["layout"], int(row["records"]),
                   int(row["lines"]), Decimal(row["hours_total"]), Decimal(row["amount_total"]),
                   row["sha256"])


# -- acknowledgements and status files → postings and events ---------------------------
def csv_rows(data: bytes) -> list[Row]:
    return [dict(r) for r in csv.DictReader(io.StringIO(data.decode()))]


def csv_bytes(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows([[str(r.get(c, "")) for c in columns] for r in rows])
    return out.getvalue().encode()


def ack_name(sequence: int, data_file: str) -> str:
    """The ERP's acknowledgement of ``data_file``: its sequence number first,
    so a reader resumes after the last one it read."""
    return f"ACK_{sequence:08d}_{data_file.rsplit('.', 1)[0]}.csv"


def status_name(sequence: int) -> str:
    return f"ARSTATUS_{sequence:08d}.csv"


def sequence_of(name: str) -> int | None:
    head, _, rest = name.partition("_")
    number = rest.split("_", 1)[0].split(".", 1)[0]
    return int(number) if head in ("ACK", "ARSTATUS") and number.isdigit() else None


def acked_file(ack: str) -> str:
    """The data file an acknowledgement names (without its extension)."""
    return ack.removesuffix(".csv").split("_", 2)[2]


def live_labour(journal: Sequence[Row], posted: Mapping[str, str]) -> list[LivePosting]:
    """Journal lines the ERP acknowledged as posted (``posted``: key → ERP
    document), less the ones a posted reversal undoes. Every posted line
    counts: a charge posted from two files is two postings."""
    undone = {r["reverses"] for r in journal if r.get("reverses") and r["key"] in posted}
    out = []
    for r in journal:
        if r["key"] in posted and not r.get("reverses") and r["key"] not in undone:
            out.append(LivePosting(r["charge"], posted[r["key"]], Decimal(r["hours"]),
                                   Decimal(r["amount"]), r["currency"], r["project"] or None))
    return out


def invoice_events(invoices: Sequence[Row], acks: Sequence[Row], source: str
                   ) -> list[dict[str, Any] | Malformed]:
    """``issued`` for each invoice the ERP acknowledged as posted; a line the
    ERP rejected goes to the exception queue with its acknowledgement."""
    by_key = {r["key"]: r for r in invoices}
    out: list[dict[str, Any] | Malformed] = []
    for ack in acks:
        row = by_key.get(ack.get("key", ""))
        if ack.get("status") == "REJECTED":
            out.append(Malformed(dict(ack), f"the ERP rejected drop line {ack.get('key')}: "
                                 f"{ack.get('message')}; fix it and replay the command",
                                 f"filedrop-reject:{ack.get('key')}"))
        elif row is not None and ack.get("status") == "POSTED":
            out.append(status_event({"invoice": row["invoice"], "erp_id": ack["erp_id"],
                                     "status": "issued", "amount_paid": "0",
                                     "at": ack.get("posted_at", "")}, source))
    return out


def status_event(row: Mapping[str, str], source: str) -> dict[str, Any] | Malformed:
    """One line of the ERP's receivables status export as ``invoice.status_changed``."""
    status = row.get("status", "")
    try:
        paid = Decimal(row.get("amount_paid") or "0")
    except InvalidOperation:
        return Malformed(dict(row), f"amount_paid {row.get('amount_paid')!r} is not a number")
    if status not in ("issued", "paid", "void") or blank(row.get("invoice")):
        return Malformed(dict(row), f"status export line for invoice {row.get('invoice')!r}: "
                         f"status {status!r} is not issued, paid or void")
    return {"type": "invoice.status_changed", "source": source,
            "id": f"filedrop-invoice:{row.get('erp_id')}:{status}:{paid}",
            "at": row.get("at") or "",
            "data": {"invoice": row["invoice"], "erp_id": row.get("erp_id"), "status": status,
                     "amount_paid": str(paid)}}
