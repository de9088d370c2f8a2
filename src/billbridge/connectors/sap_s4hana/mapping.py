"""Canonical commands ↔ SAP S/4HANA Cloud OData 2.0 entities, and SAP's
billing documents and clearing back to canonical ``invoice.status_changed``
events. Pure: no I/O.

How the hub's records land in S/4HANA (docs/connectors/sap-s4hana.md):
customers are business partners (``A_BusinessPartner``, organisation
category) whose ``BusinessPartnerIDByExtSystem`` is the hub's reference;
projects are enterprise projects whose ``Project`` id is the project code;
time charges are timesheet records (``TimeSheetEntryCollection``) on the
project's WBS element whose note names the charge and carries the command's
marker; invoices are debit memo requests whose ``PurchaseOrderByCustomer``
is the canonical invoice id (SAP bills them into billing documents). The
names the public sources leave unverified are ``SapSettings``, each with a
default.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from billbridge.connectors.base import LivePosting, Malformed
from billbridge.connectors.fields import (
    MappingError,
    OptionSettings,
    blank,
    command_record,
    decimal_of,
    marker,
)
from billbridge.domain.records import Customer, Invoice, ProjectStatus, TimeCharge

POSTING_NOTE = re.compile(r"^billbridge (tc_\S+) (-?[0-9.]+) h (-?[0-9.]+) ([A-Z]{3}) ")
EXTERNAL_ID_LENGTH = 20  # BusinessPartnerIDByExtSystem is CHAR 20
_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")


@dataclass(frozen=True, slots=True)
class SapSettings(OptionSettings):
    """Where and how one S/4HANA Cloud tenant takes the hub's records. Every
    name the public sources leave unverified is here, so a tenant whose
    ``$metadata`` or configuration says otherwise is set up, not patched."""

    company_code: str = "1010"
    company_codes: Mapping[str, str] = field(default_factory=dict)
    """Canonical legal entity code → company code."""
    bp_category: str = "2"  # organisation
    bp_grouping: str = ""  # the tenant's number range grouping; empty: SAP's default
    tax_number_type: str = ""  # BPTaxType for the customer's tax id; empty: not sent
    project_profile: str = "YP02"
    responsible_cost_center: str = "10101101"
    profit_center: str = "YB101"
    project_status: Mapping[str, str] = field(default_factory=lambda: {
        "pending": "00", "active": "10", "on_hold": "10", "closed": "42"})
    """Canonical project status → ``ProcessingStatus`` (unverified codes)."""
    workers: Mapping[str, str] = field(default_factory=dict)
    """Canonical worker → ``PersonWorkAgreementExternalID`` (default: the same id)."""
    activity_type: str = "T001"
    billable_category: str = "80"  # BillingControlCategory of billable time
    cost_category: str = "90"  # and of time that is cost only
    timesheet_create: str = "C"  # TimeSheetOperation of a new record (unverified)
    timesheet_delete: str = "D"  # and of a cancelled one (unverified)
    timesheet_status: str = "30"  # TimeSheetStatus written (approved; unverified)
    debit_memo_type: str = "L2"
    sales_organization: str = "1010"
    distribution_channel: str = "10"
    division: str = "00"
    material: str = "SERVICE-HOURS"
    invoice_reference_field: str = "PurchaseOrderByCustomer"
    """The debit memo request field holding the canonical invoice id."""
    clearing_reference_field: str = "BillingDocument"
    """The operational accounting item field naming its billing document (unverified)."""
    modified_field: str = "LastChangeDateTime"
    """The billing documents' change stamp the status reads page by (unverified)."""

    def company_of(self, legal_entity: str | None) -> str:
        return self.company_codes.get(legal_entity or "", self.company_code)

    def worker(self, worker: str) -> str:
        return self.workers.get(worker, worker)


def external_id(canonical_id: str) -> str:
    """The business partner's ``BusinessPartnerIDByExtSystem``: the canonical
    id when it fits the field's 20 characters, else a stable digest of it."""
    if len(canonical_id) <= EXTERNAL_ID_LENGTH:
        return canonical_id
    return "bb" + hashlib.sha256(canonical_id.encode()).hexdigest()[:EXTERNAL_ID_LENGTH - 2]


def edm_date(day: date) -> str:
    """An Edm.DateTime in OData 2.0 JSON: ``/Date(ms since 1970 UTC)/``."""
    moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return f"/Date({int(moment.timestamp()) * 1000})/"


def parse_edm_date(value: Any) -> datetime | None:
    """``/Date(1700000000000)/`` (or ``+0000``) as a UTC date-time; None otherwise."""
    found = _DATE.match(str(value or ""))
    if not found:
        return None
    return datetime.fromtimestamp(int(found.group(1)) / 1000, tz=UTC)


def etag_of(row: Mapping[str, Any]) -> str | None:
    meta = row.get("__metadata")
    return str(meta["etag"]) if isinstance(meta, Mapping) and meta.get("etag") else None


# -- commands → SAP entities -----------------------------------------------------------

def customer(payload: Mapping[str, Any], settings: SapSettings, *, new: bool
             ) -> tuple[str, dict[str, Any]]:
    """A ``customer.upsert`` as an ``A_BusinessPartner`` (reference, fields);
    a new one carries its tax number (a deep insert) when a type is set."""
    record = command_record(Customer, payload, "customer.upsert")
    reference = external_id(record.id)
    body: dict[str, Any] = {"OrganizationBPName1": record.name[:40],
                            "SearchTerm1": record.name[:20].upper(),
                            "BusinessPartnerIDByExtSystem": reference,
                            "BusinessPartnerIsBlocked": record.status.value != "active"}
    if new:
        body["BusinessPartnerCategory"] = settings.bp_category
        if settings.bp_grouping:
            body["BusinessPartnerGrouping"] = settings.bp_grouping
        if record.tax_id and settings.tax_number_type:
            body["to_BusinessPartnerTax"] = {"results": [
                {"BPTaxType": settings.tax_number_type, "BPTaxNumber": record.tax_id}]}
    return reference, body


def project(payload: Mapping[str, Any], customer_bp: str | None, settings: SapSettings,
            today: date, *, new: bool) -> tuple[str, dict[str, Any]]:
    """A ``project.upsert`` as an ``A_EnterpriseProject`` keyed (for the hub)
    by its ``Project`` id, the project code."""
    code, status = payload.get("code"), payload.get("status")
    if blank(code):
        raise MappingError("project.upsert without a project code")
    try:
        processing = settings.project_status[ProjectStatus(str(status)).value]
    except (ValueError, KeyError):
        raise MappingError(f"project {code}: status {status!r} has no ProcessingStatus in the "
                           "connection's project_status map") from None
    body: dict[str, Any] = {"ProjectDescription": str(payload.get("name") or code)[:40],
                            "ProcessingStatus": processing}
    if customer_bp:
        body["Customer"] = customer_bp
    if new:
        body.update({"Project": str(code), "ProjectStartDate": edm_date(today),
                     "ProjectProfileCode": settings.project_profile,
                     "CompanyCode": settings.company_code,
                     "ResponsibleCostCenter": settings.responsible_cost_center,
                     "ProfitCenter": settings.profit_center})
    return str(code), body


def timesheet(payload: Mapping[str, Any], idempotency_key: str, settings: SapSettings
              ) -> dict[str, Any]:
    """A ``time_charge.post`` as a timesheet record on the project's WBS
    element; its note names the charge, hours, amount and currency, and
    carries the marker."""
    charge = command_record(TimeCharge, payload, "time_charge.post")
    return {"PersonWorkAgreementExternalID": settings.worker(charge.worker),
            "CompanyCode": settings.company_code,
            "TimeSheetDate": edm_date(charge.work_date),
            "TimeSheetIsReleasedOnSave": True,
            "TimeSheetStatus": settings.timesheet_status,
            "TimeSheetOperation": settings.timesheet_create,
            "TimeSheetDataFields": {
                "WBSElement": charge.project, "ActivityType": settings.activity_type,
                "RecordedHours": f"{charge.hours}", "RecordedQuantity": f"{charge.hours}",
                "HoursUnitOfMeasure": "H",
                "BillingControlCategory": (settings.billable_category if charge.billable
                                           else settings.cost_category),
                "TimeSheetNote": note(charge, idempotency_key)}}


def note(charge: TimeCharge, idempotency_key: str) -> str:
    return (f"billbridge {charge.id} {charge.hours} h {charge.amount} {charge.currency} "
            f"{marker(idempotency_key)}")


def record_id(row: Mapping[str, Any]) -> str:
    """A timesheet record's id as the hub keeps it: worker/company/record."""
    return (f"{row.get('PersonWorkAgreementExternalID')}/{row.get('CompanyCode')}/"
            f"{row.get('TimeSheetRecord')}")


def record_key(external: str) -> dict[str, str] | None:
    worker, _, rest = external.rpartition("/")
    person, _, company = worker.rpartition("/")
    if not (person and company and rest):
        return None
    return {"PersonWorkAgreementExternalID": person, "CompanyCode": company,
            "TimeSheetRecord": rest}


def cancellation(row: Mapping[str, Any], settings: SapSettings) -> dict[str, Any]:
    """The write that cancels a timesheet record (a reversal): the record
    sent again with the delete operation."""
    return {"PersonWorkAgreementExternalID": row.get("PersonWorkAgreementExternalID"),
            "CompanyCode": row.get("CompanyCode"), "TimeSheetRecord": row.get("TimeSheetRecord"),
            "TimeSheetOperation": settings.timesheet_delete,
            "TimeSheetIsReleasedOnSave": True}


def live_labour(rows: Sequence[Mapping[str, Any]]) -> list[LivePosting]:
    """The timesheet records billbridge wrote that are live."""
    out = []
    for row in rows:
        data = row.get("TimeSheetDataFields") or {}
        found = POSTING_NOTE.match(str(data.get("TimeSheetNote") or ""))
        if found is None:
            continue
        out.append(LivePosting(found.group(1), record_id(row), Decimal(found.group(2)),
                               Decimal(found.group(3)), found.group(4),
                               None if data.get("WBSElement") is None
                               else str(data["WBSElement"])))
    return out


def debit_memo_request(payload: Mapping[str, Any], sold_to: str, settings: SapSettings
                       ) -> dict[str, Any]:
    """An ``invoice.create`` as a debit memo request with its items (one
    deep insert): the canonical invoice id in ``invoice_reference_field``."""
    bill = command_record(Invoice, payload, "invoice.create")
    if not bill.lines:
        raise MappingError(f"invoice {bill.id} has no lines")
    items = [{"DebitMemoRequestItem": str(number * 10),
              "Material": settings.material,
              "DebitMemoRequestItemText": line.description[:40],
              "RequestedQuantity": f"{line.quantity}", "RequestedQuantityUnit": "H",
              "NetAmount": f"{line.amount}", "TransactionCurrency": bill.currency,
              **({"WBSElement": bill.project} if bill.project else {})}
             for number, line in enumerate(bill.lines, start=1)]
    return {"DebitMemoRequestType": settings.debit_memo_type,
            "SalesOrganization": settings.sales_organization,
            "DistributionChannel": settings.distribution_channel,
            "OrganizationDivision": settings.division, "SoldToParty": sold_to,
            settings.invoice_reference_field: bill.id,
            "TransactionCurrency": bill.currency,
            "to_Item": {"results": items}}


# -- SAP billing documents → canonical events --------------------------------------------

def status_event(document: Mapping[str, Any], invoice_id: str, cleared: bool, *,
                 settings: SapSettings, source: str) -> dict[str, Any] | Malformed:
    """``invoice.status_changed`` for a billing document that bills one of
    the hub's debit memo requests: issued, void once cancelled, paid once its
    receivable is cleared. The event id is the document's state, so the same
    state read again is one event."""
    number = document.get("BillingDocument")
    if blank(number):
        return Malformed(dict(document), "SAP billing document without BillingDocument", None)
    stamp = parse_edm_date(document.get(settings.modified_field))
    if stamp is None:
        return Malformed(dict(document), f"SAP billing document {number}: "
                         f"{settings.modified_field} is {document.get(settings.modified_field)!r}",
                         f"sap-billing:{number}")
    try:
        total = decimal_of(document.get("TotalNetAmount"), "TotalNetAmount")
    except ValueError as exc:
        return Malformed(dict(document), f"SAP billing document {number}: {exc}",
                         f"sap-billing:{number}")
    if document.get("BillingDocumentIsCancelled") is True:
        status = "void"
    else:
        status = "paid" if cleared else "issued"
    data: dict[str, Any] = {"invoice": invoice_id, "erp_id": str(number), "status": status}
    if status == "paid":
        data["amount_paid"] = str(total)
    return {"type": "invoice.status_changed", "source": source,
            "id": f"sap-billing:{number}:{status}",
            "at": stamp.isoformat().replace("+00:00", "Z"), "data": data}


def flat_value(row: Mapping[str, Any], path: str) -> str | None:
    """A property by its path (``TimeSheetDataFields/TimeSheetNote``) as text."""
    value: Any = row
    for part in path.split("/"):
        value = value.get(part) if isinstance(value, Mapping) else None
    return None if value in (None, "") else str(value)
