"""Sage Intacct's REST objects (``/ia/api/v1``) ↔ the gateway's records.
Pure: no I/O.

The REST connector writes what the XML connector writes (``mapping`` builds
it: a ``CUSTOMER``, a ``PROJECT``, a ``TIMESHEET`` of one entry, a
``create_invoice``) and reads back rows in the gateway's field names, so the
ledger reading, the reversal and the invoice status events are ``mapping``'s
own. This module is the one table between the two spellings, read both ways:
the connector turns its records into REST bodies and REST query rows into
records; the emulator turns REST bodies into the records it keeps and its
records into REST rows, so a record written one way reads back the other.

REST field names the facts file gives: customer ``id``, ``name``,
``status``; timesheet ``beginDate``, ``state``, ``employee``, ``lines``;
invoice ``invoiceDate``, ``dueDate``, ``invoiceNumber``, ``state``
[SCUST, STSREST, SINV]. The rest of the table (line fields, amounts,
``whenModified``, the ``partiallyPaid``/``reversed`` states) is unverified:
see docs/connectors/sage-intacct.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from billbridge.connectors.fields import settings_from_options
from billbridge.connectors.sage_intacct.mapping import STAMP_FORMAT

API_PATH = "/ia/api/v1"
COMPOSITE = "/services/core/composite"
QUERY = "/services/core/query"
TOKEN = "/oauth2/token"
ENTITY_HEADER = "X-IA-API-Param-Entity"

OBJECTS = {"CUSTOMER": "accounts-receivable/customer", "PROJECT": "projects/project",
           "TIMESHEET": "time/timesheet", "TIMESHEETENTRY": "time/timesheet-line",
           "ARINVOICE": "accounts-receivable/invoice"}
"""Gateway object → REST object name (``/objects/<name>``, and ``object`` in a query)."""

# (REST path, gateway field, kind); a kind says how the value is spelt each way.
FIELDS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "CUSTOMER": (("key", "RECORDNO", "text"), ("id", "CUSTOMERID", "text"),
                 ("name", "NAME", "text"), ("status", "STATUS", "text"),
                 ("currency", "CURRENCY", "text"), ("taxId", "TAXID", "text"),
                 ("contacts.default.printAs", "DISPLAYCONTACT.PRINTAS", "text"),
                 ("contacts.default.companyName", "DISPLAYCONTACT.COMPANYNAME", "text"),
                 ("contacts.default.mailingAddress.country",
                  "DISPLAYCONTACT.MAILADDRESS.COUNTRYCODE", "text"),
                 ("entity.id", "MEGAENTITYID", "text")),
    "PROJECT": (("key", "RECORDNO", "text"), ("id", "PROJECTID", "text"),
                ("name", "NAME", "text"), ("status", "STATUS", "text"),
                ("projectStatus.id", "PROJECTSTATUS", "text"),
                ("customer.id", "CUSTOMERID", "text"), ("entity.id", "MEGAENTITYID", "text")),
    "TIMESHEET": (("key", "RECORDNO", "text"), ("employee.id", "EMPLOYEEID", "text"),
                  ("beginDate", "BEGINDATE", "date"), ("description", "DESCRIPTION", "text"),
                  ("state", "STATE", "lower"), ("entity.id", "MEGAENTITYID", "text")),
    "TIMESHEETENTRY": (("key", "RECORDNO", "text"), ("timesheet.key", "TIMESHEETKEY", "text"),
                       ("employee.id", "EMPLOYEEID", "text"),
                       ("entryDate", "ENTRYDATE", "date"), ("quantity", "QTY", "text"),
                       ("project.id", "PROJECTID", "text"), ("isBillable", "BILLABLE", "bool"),
                       ("description", "DESCRIPTION", "text"),
                       ("entity.id", "MEGAENTITYID", "text")),
    "ARINVOICE": (("key", "RECORDNO", "text"), ("invoiceNumber", "RECORDID", "text"),
                  ("customer.id", "CUSTOMERID", "text"), ("description", "DESCRIPTION", "text"),
                  ("state", "STATE", "state"), ("currency.txnCurrency", "CURRENCY", "text"),
                  ("totalTxnAmount", "TOTALENTERED", "text"),
                  ("totalTxnAmountPaid", "TOTALPAID", "text"),
                  ("totalTxnAmountDue", "TOTALDUE", "text"),
                  ("whenModified", "WHENMODIFIED", "stamp"),
                  ("entity.id", "MEGAENTITYID", "text")),
}
INVOICE_STATES = {"draft": "Draft", "posted": "Posted", "partiallyPaid": "Partially Paid",
                  "paid": "Paid", "reversed": "Reversed"}
INVOICE_LINE = (("glAccount.id", "glaccountno", "text"), ("txnAmount", "amount", "text"),
                ("memo", "memo", "text"), ("project.id", "projectid", "text"))
TIMESHEET_LINE = tuple(f for f in FIELDS["TIMESHEETENTRY"]
                       if f[1] in ("ENTRYDATE", "QTY", "PROJECTID", "BILLABLE", "DESCRIPTION"))


@dataclass(frozen=True, slots=True)
class IntacctRestSettings:
    """What the REST API leaves unverified, each a connection option."""

    trust_idempotency_key: bool = False
    """Send a resend as it is, trusting Intacct to answer a subrequest's
    ``Idempotency-Key`` it has seen with what it did then; off: a resend looks
    up what it wrote first (``resend_lookup``), as over the gateway."""
    rest_modified_field: str = "whenModified"
    """The invoice field the status read pages by (its name is unverified)."""

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> IntacctRestSettings:
        return cls(**settings_from_options(cls, options))


# -- one value, each way -------------------------------------------------------------

def _to_rest(kind: str, value: Any) -> Any:
    text = "" if value is None else str(value)
    if kind == "date":
        return datetime.strptime(text, "%m/%d/%Y").date().isoformat() if text else None
    if kind == "stamp":
        return (datetime.strptime(text, STAMP_FORMAT).replace(tzinfo=UTC)
                .isoformat().replace("+00:00", "Z")) if text else None
    if kind == "bool":
        return value if isinstance(value, bool) else text.lower() == "true"
    if kind == "lower":
        return text[:1].lower() + text[1:]
    if kind == "state":
        return {v: k for k, v in INVOICE_STATES.items()}.get(text, text)
    return value


def _from_rest(kind: str, value: Any) -> Any:
    if value is None:
        return ""
    text = str(value)
    if kind == "date":
        return date.fromisoformat(text[:10]).strftime("%m/%d/%Y")
    if kind == "stamp":
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC) \
            .strftime(STAMP_FORMAT)
    if kind == "bool":
        return "true" if value is True or text.lower() == "true" else "false"
    if kind == "lower":
        return text[:1].upper() + text[1:]
    if kind == "state":
        return INVOICE_STATES.get(text, text)
    return text


def stamp_of(value: Any) -> str:
    """A REST timestamp (ISO 8601) as the gateway's ``MM/DD/YYYY HH:MM:SS`` in UTC."""
    return str(_from_rest("stamp", value))


def cursor_as(cursor: str, spelling: str) -> str:
    """A status cursor in the spelling of the API about to read with it
    (``rest``: ISO 8601; ``xml``: the gateway's stamp), so a connection moved
    from one API to the other carries its place over."""
    iso = "T" in cursor
    if spelling == "rest" and not iso:
        return str(_to_rest("stamp", cursor))
    if spelling == "xml" and iso:
        return stamp_of(cursor)
    return cursor


def get_path(record: Mapping[str, Any], path: str) -> Any:
    """A dotted field of a record, nested (``{"a": {"b": 1}}``) or flat (``{"a.b": 1}``)."""
    if path in record:
        return record[path]
    node: Any = record
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _put(record: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        record = record.setdefault(part, {})
    record[last] = value


def rest_of(table: tuple[tuple[str, str, str], ...], row: Mapping[str, Any],
            only: set[str] | None = None) -> dict[str, Any]:
    """A gateway record as a REST body, nested; fields the row lacks are left out."""
    out: dict[str, Any] = {}
    for path, name, kind in table:
        value = get_path(row, name)
        if value is not None and (only is None or path in only):
            _put(out, path, _to_rest(kind, value))
    return out


def record_of(table: tuple[tuple[str, str, str], ...], body: Mapping[str, Any]
              ) -> dict[str, Any]:
    """A REST body or query row as a gateway record (its nested fields nested)."""
    out: dict[str, Any] = {}
    for path, name, kind in table:
        value = get_path(body, path)
        if value is not None:
            _put(out, name, _from_rest(kind, value))
    return out


def flat(record: Mapping[str, Any]) -> dict[str, Any]:
    """A gateway record with its nested fields as ``DISPLAYCONTACT.PRINTAS``."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, Mapping):
            out.update({f"{key}.{k}": v for k, v in flat(value).items()})
        else:
            out[key] = value
    return out


# -- the connector's records as REST bodies --------------------------------------------

def customer_body(fields: Mapping[str, Any]) -> dict[str, Any]:
    return rest_of(FIELDS["CUSTOMER"], fields)


def project_body(fields: Mapping[str, Any]) -> dict[str, Any]:
    return rest_of(FIELDS["PROJECT"], fields)


def timesheet_body(sheet: Mapping[str, Any]) -> dict[str, Any]:
    """A ``TIMESHEET`` (``mapping.timesheet`` or ``mapping.reversal``) as a REST timesheet."""
    body = rest_of(FIELDS["TIMESHEET"], sheet)
    entries = get_path(sheet, "TIMESHEETENTRIES.TIMESHEETENTRY") or []
    body["lines"] = [rest_of(TIMESHEET_LINE, e) for e in entries]
    return body


def timesheet_record(body: Mapping[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A REST timesheet as the gateway's ``TIMESHEET`` and its entries."""
    lines = body.get("lines") or []
    return record_of(FIELDS["TIMESHEET"], body), [record_of(TIMESHEET_LINE, x) for x in lines]


def _iso(parts: Mapping[str, Any]) -> str:
    return f"{parts['year']}-{parts['month']}-{parts['day']}"


def invoice_body(legacy: Mapping[str, Any]) -> dict[str, Any]:
    """A ``create_invoice`` (``mapping.invoice``) as a REST AR invoice, posted."""
    body: dict[str, Any] = {"invoiceNumber": legacy["invoiceno"],
                            "customer": {"id": legacy["customerid"]},
                            "invoiceDate": _iso(legacy["datecreated"]),
                            "dueDate": _iso(legacy["datedue"]),
                            "description": legacy.get("description"),
                            "currency": {"txnCurrency": legacy.get("currency")},
                            "state": "posted"}
    if legacy.get("ponumber"):
        body["referenceNumber"] = legacy["ponumber"]
    items = get_path(legacy, "invoiceitems.lineitem") or []
    body["lines"] = [rest_of(INVOICE_LINE, item) for item in items]
    return body


def invoice_record(body: Mapping[str, Any]) -> dict[str, Any]:
    """A REST AR invoice as the ``create_invoice`` fields it stands for."""
    out = {"invoiceno": get_path(body, "invoiceNumber"),
           "customerid": get_path(body, "customer.id"),
           "description": body.get("description"),
           "currency": get_path(body, "currency.txnCurrency")}
    return {**{k: v for k, v in out.items() if v is not None},
            "invoiceitems": [record_of(INVOICE_LINE, x) for x in body.get("lines") or []]}


def rows_of(obj: str, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """REST query rows as gateway rows, flat (``mapping``'s functions read them)."""
    return [flat(record_of(FIELDS[obj], row)) for row in rows]


def fields_of(obj: str, names: tuple[str, ...] | list[str]) -> list[str]:
    """The REST paths of gateway fields, for a query's ``fields``."""
    by_name = {name: path for path, name, _kind in FIELDS[obj]}
    return [by_name[n] for n in names if n in by_name]
