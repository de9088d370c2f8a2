"""Outbox commands → NetSuite record bodies, and NetSuite invoices → canonical
``invoice.status_changed`` events.

The account-specific internal ids a body needs (currencies, job statuses, the
service item that bills time, the subsidiary) are configuration: a
``MappingConfig`` built from the connection's options, with defaults that
match a fresh OneWorld account (and the emulator). A command that cannot be
turned into a body is refused with a ``Refusal`` naming what is missing; an
invoice row that cannot be turned into an event becomes ``Malformed``.
Amounts and hours go on the wire as decimal strings, never floats.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from billbridge.connectors.base import Malformed, OutboundCommand
from billbridge.connectors.fields import blank, explain
from billbridge.domain.events import InvoiceStatusChanged

SOURCE = "netsuite"

# NetSuite accepts letters, digits, "_" and "-" in an external id. Anything else
# (or an id that looks like our encoding) is hex-encoded, reversibly.
_EXTERNAL_ID = re.compile(r"^[A-Za-z0-9_-]{1,200}$")
_ENCODED = "bbx-"

RECORD_TYPES = {"customer.upsert": "customer", "project.upsert": "job",
                "time_charge.post": "timeBill", "invoice.create": "invoice",
                "time_charge.reverse": "timeBill"}
"""Command kind → NetSuite record type."""

MARKER_FIELDS = {"timeBill": "memo", "invoice": "memo"}
"""Where the marker goes on a record type that is created, not upserted
(marker mode): the field the look-up before a resend searches."""

INVOICE_STATUSES = {"A": "issued", "B": "paid", "V": "void"}
"""SuiteQL ``transaction.status`` of a ``CustInvc`` → canonical status. Other
codes (D pending approval, E rejected) are drafts: no event."""
DRAFT_INVOICE_STATUSES = frozenset({"D", "E"})

SUITEQL_STAMP = "YYYY-MM-DD HH24:MI:SS"
"""The ``TO_CHAR``/``TO_TIMESTAMP`` format the connector reads and filters
``lastmodifieddate`` with (SuiteQL otherwise answers in the user's date format)."""
STAMP_FORMAT = "%Y-%m-%d %H:%M:%S"


def external_id(value: str) -> str:
    """The NetSuite external id of a canonical id or key."""
    if _EXTERNAL_ID.match(value) and not value.startswith(_ENCODED):
        return value
    return _ENCODED + value.encode().hex()


def canonical_id(value: str) -> str:
    """The inverse of ``external_id``."""
    if value.startswith(_ENCODED):
        try:
            return bytes.fromhex(value[len(_ENCODED):]).decode()
        except ValueError:
            return value
    return value


def marker(idempotency_key: str, canonical: str) -> str:
    """The memo of a record created in marker mode: the canonical record it
    writes, as every memo billbridge writes starts, then the command's key,
    which a resend looks up."""
    return f"billbridge {canonical} key:{idempotency_key}"


def bare_marker(idempotency_key: str) -> str:
    """The memo marker mode wrote before the memo named the record: the key
    alone. A resend looks it up too, so a posting from then is not made twice."""
    return f"billbridge:{idempotency_key}"


MEMO = re.compile(r"^billbridge (?P<id>.+?)(?: key:\S+)?(?: reversed)?$")


def memo_record(memo: Any) -> str | None:
    """The canonical id a memo billbridge wrote names (``billbridge {id}``,
    with a key in marker mode, ``reversed`` after a reversal); None for any
    other memo, a bare key among them."""
    found = MEMO.match(memo) if isinstance(memo, str) else None
    return found.group("id") if found else None


def _decimal(value: Any) -> str:
    """A JSON number or string as a decimal string (floats go through str())."""
    return str(Decimal(str(value)))


@dataclass(frozen=True)
class MappingConfig:
    """Account-specific internal ids, from ``Connection.options``."""

    subsidiary: str = "1"
    service_item: str = "1"
    currencies: Mapping[str, str] = field(default_factory=lambda: {
        "USD": "1", "GBP": "2", "CAD": "3", "EUR": "4"})
    job_statuses: Mapping[str, str] = field(default_factory=lambda: {
        "pending": "4", "active": "2", "on_hold": "6", "closed": "1"})
    employees: Mapping[str, str] = field(default_factory=dict)
    """worker → employee internal id; a worker not listed is referred to by
    external id (employees keyed by the firm's worker id)."""
    rejected_approval_status: str = "3"
    timezone: str = "UTC"
    """The account's time zone: SuiteQL datetimes are in it."""

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> MappingConfig:
        defaults = cls()

        def table(name: str, base: Mapping[str, str]) -> dict[str, str]:
            given = options.get(name) or {}
            if not isinstance(given, Mapping):
                raise ValueError(f"netsuite option {name} must be a mapping, got {given!r}")
            return {**base, **{str(k): str(v) for k, v in given.items()}}

        config = cls(subsidiary=str(options.get("subsidiary", defaults.subsidiary)),
                     service_item=str(options.get("service_item", defaults.service_item)),
                     currencies=table("currencies", defaults.currencies),
                     job_statuses=table("job_statuses", defaults.job_statuses),
                     employees=table("employees", {}),
                     timezone=str(options.get("timezone", defaults.timezone)))
        config.zone()  # an unknown zone is a configuration error now, not at the first poll
        return config

    def zone(self) -> ZoneInfo:
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"netsuite option timezone {self.timezone!r} is not an IANA time "
                             "zone") from None


class Refusal(ValueError):
    """A command this mapping cannot express; the message says what to fix."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _require(payload: Mapping[str, Any], command: OutboundCommand, *names: str) -> None:
    missing = [n for n in names if blank(payload.get(n))]
    if missing:
        raise Refusal("INVALID_COMMAND", f"{command.kind} needs {', '.join(missing)}")


def _currency(config: MappingConfig, code: Any) -> dict[str, str]:
    internal = config.currencies.get(str(code))
    if internal is None:
        raise Refusal("UNMAPPED_CURRENCY", f"currency {code} has no NetSuite internal id: add "
                      "it to the connection's currencies option")
    return {"id": internal}


def _ref(command: OutboundCommand, kind: str, canonical: Any, what: str) -> dict[str, str]:
    internal = command.ref(kind, canonical)
    if internal is None:
        raise Refusal("MISSING_REFERENCE", f"{command.kind}: NetSuite has no {kind} {canonical} "
                      f"yet ({what})")
    return {"id": internal}


def customer_body(command: OutboundCommand, config: MappingConfig) -> dict[str, Any]:
    payload = command.payload
    _require(payload, command, "id", "name", "currency", "billing_country")
    body: dict[str, Any] = {
        "companyName": payload["name"], "isPerson": False,
        "subsidiary": {"id": config.subsidiary},
        "currency": _currency(config, payload["currency"]),
        "addressBook": {"items": [{"defaultBilling": True, "addressBookAddress": {
            "country": {"id": str(payload["billing_country"]).upper()}}}]}}
    if not blank(payload.get("tax_id")):
        body["vatRegNumber"] = payload["tax_id"]
    return body


def job_body(command: OutboundCommand, config: MappingConfig) -> dict[str, Any]:
    payload = command.payload
    _require(payload, command, "code", "name", "status")
    if blank(payload.get("customer")):
        raise Refusal("MISSING_REFERENCE", f"project {payload['code']} came without a customer; "
                      "a NetSuite project (job) belongs to one: activate it from the CRM first")
    status = config.job_statuses.get(str(payload["status"]))
    if status is None:
        raise Refusal("UNMAPPED_STATUS", f"project status {payload['status']} has no NetSuite "
                      "job status: add it to the connection's job_statuses option")
    return {"entityId": payload["code"], "companyName": payload["name"],
            "parent": _ref(command, "customer", payload["customer"], "its customer"),
            "entityStatus": {"id": status}, "subsidiary": {"id": config.subsidiary}}


def time_bill_body(command: OutboundCommand, config: MappingConfig) -> dict[str, Any]:
    payload = command.payload
    _require(payload, command, "id", "project", "worker", "work_date", "hours", "rate",
             "currency")
    worker = str(payload["worker"])
    employee = ({"id": config.employees[worker]} if worker in config.employees
                else {"externalId": external_id(worker)})
    try:
        hours, rate = _decimal(payload["hours"]), _decimal(payload["rate"])
    except (InvalidOperation, ValueError):
        raise Refusal("INVALID_COMMAND", f"time charge {payload['id']}: hours "
                      f"{payload['hours']!r} and rate {payload['rate']!r} must be "
                      "decimals") from None
    return {"employee": employee,
            "customer": _ref(command, "project", payload["project"], "its project"),
            "tranDate": str(payload["work_date"]), "hours": hours, "rate": rate,
            "isBillable": bool(payload.get("billable")),
            "item": {"id": config.service_item}, "subsidiary": {"id": config.subsidiary},
            "memo": f"billbridge {payload['id']}"}


def invoice_body(command: OutboundCommand, config: MappingConfig) -> dict[str, Any]:
    payload = command.payload
    _require(payload, command, "id", "customer", "currency", "lines")
    # NetSuite invoices a job directly: the entity is the project when there is one.
    entity = (_ref(command, "project", payload["project"], "its project")
              if not blank(payload.get("project"))
              else _ref(command, "customer", payload["customer"], "its customer"))
    lines = []
    for line in payload["lines"]:
        item: dict[str, Any] = {"item": {"id": config.service_item},
                                "description": line.get("description", ""),
                                "quantity": _decimal(line["quantity"]),
                                "rate": _decimal(line["unit_price"]),
                                "amount": _decimal(line["amount"])}
        if not blank(line.get("tax_code")):
            item["taxCode"] = {"refName": line["tax_code"]}
        lines.append(item)
    body: dict[str, Any] = {"entity": entity, "currency": _currency(config, payload["currency"]),
                            "subsidiary": {"id": config.subsidiary},
                            "memo": f"billbridge {payload['id']}", "item": {"items": lines}}
    if not blank(payload.get("po_number")):
        body["otherRefNum"] = payload["po_number"]
    if not blank(payload.get("invoice_date")):
        body["tranDate"] = str(payload["invoice_date"])
    return body


BODIES = {"customer.upsert": customer_body, "project.upsert": job_body,
          "time_charge.post": time_bill_body, "invoice.create": invoice_body}


def record_key(command: OutboundCommand) -> str:
    """The external id a command's record is upserted under: the canonical id
    for records written once and then updated (customers, projects,
    invoices), the idempotency key for time bills (a re-priced charge is a
    new posting of the same charge, not an update of the old one)."""
    payload = command.payload
    if command.kind == "customer.upsert":
        return external_id(str(payload.get("id")))
    if command.kind == "project.upsert":
        return external_id(str(payload.get("code")))
    if command.kind == "invoice.create":
        return external_id(str(payload.get("id")))
    return external_id(f"bb-{command.idempotency_key}")


# -- invoices back from SuiteQL --------------------------------------------------------
def parse_stamp(value: Any, zone: ZoneInfo) -> datetime | None:
    """``YYYY-MM-DD HH24:MI:SS`` in the account's zone → aware UTC datetime."""
    try:
        local = datetime.strptime(str(value), STAMP_FORMAT)
    except ValueError:
        return None
    return local.replace(tzinfo=zone).astimezone(UTC)


def invoice_event(row: Mapping[str, Any], config: MappingConfig, *,
                  source: str = SOURCE) -> dict[str, Any] | Malformed | None:
    """One SuiteQL invoice row (``id, externalid, status, foreigntotal,
    foreignamountunpaid, modified``) → ``invoice.status_changed``; None for a
    draft (pending approval, rejected) and for an invoice billbridge did not
    raise (no external id)."""
    internal, ext, status = row.get("id"), row.get("externalid"), row.get("status")
    event_id = f"invoice:{internal}:{row.get('modified')}:{status}"
    if blank(ext):
        return None
    if status in DRAFT_INVOICE_STATUSES:
        return None
    canonical_status = INVOICE_STATUSES.get(str(status))
    if canonical_status is None:
        return Malformed(dict(row), f"NetSuite invoice {internal}: unknown status {status!r} "
                         f"(known: {', '.join(sorted(INVOICE_STATUSES))})", event_id)
    at = parse_stamp(row.get("modified"), config.zone())
    if at is None:
        return Malformed(dict(row), f"NetSuite invoice {internal}: lastmodifieddate "
                         f"{row.get('modified')!r} is not {SUITEQL_STAMP}", event_id)
    try:
        total = Decimal(str(row.get("foreigntotal")))
        unpaid = Decimal(str(row.get("foreignamountunpaid") or "0"))
    except InvalidOperation:
        return Malformed(dict(row), f"NetSuite invoice {internal}: foreigntotal "
                         f"{row.get('foreigntotal')!r} or foreignamountunpaid "
                         f"{row.get('foreignamountunpaid')!r} is not a number", event_id)
    data = {"invoice": canonical_id(str(ext)), "erp_id": str(internal),
            "status": canonical_status, "amount_paid": str(total - unpaid)}
    try:
        InvoiceStatusChanged.model_validate(data)
    except ValidationError as exc:
        return Malformed(dict(row), f"NetSuite invoice {internal}: {explain(exc)}", event_id)
    return {"type": "invoice.status_changed", "source": source, "id": event_id,
            "at": at.isoformat(), "data": data}


def reversal_body(command: OutboundCommand, config: MappingConfig) -> dict[str, Any]:
    """A posted time bill undone: rejected and not billable, so it neither
    bills nor costs; the record stays for the audit trail."""
    return {"isBillable": False, "approvalStatus": {"id": config.rejected_approval_status},
            "memo": f"billbridge {command.payload.get('charge')} reversed"}
