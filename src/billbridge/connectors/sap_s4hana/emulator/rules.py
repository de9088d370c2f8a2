"""The fake tenant's business rules: what each entity set needs before SAP
takes a create or an update, the timesheet operations (create, update,
delete by ``TimeSheetOperation``), a debit memo request's total, and the
accountant's billing, clearing and cancelling of billing documents."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from billbridge.connectors.sap_s4hana.emulator import company, query
from billbridge.connectors.sap_s4hana.emulator.schema import SERVICES, EntitySet, Service

if TYPE_CHECKING:
    from billbridge.connectors.sap_s4hana.emulator.server import SapEmulator

BP = ("API_BUSINESS_PARTNER", "A_BusinessPartner")
PROJECT = ("API_ENTERPRISE_PROJECT_SRV;v=0002", "A_EnterpriseProject")
TIMESHEET = ("API_MANAGE_WORKFORCE_TIMESHEET", "TimeSheetEntryCollection")
MEMO = ("API_DEBIT_MEMO_REQUEST_SRV", "A_DebitMemoRequest")
BILLING = ("API_BILLING_DOCUMENT_SRV", "A_BillingDocument")
CUBE = ("API_OPLACCTGDOCITEMCUBE_SRV", "A_OperationalAcctgDocItemCube")


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


def _invalid(message: str) -> Refused:
    return Refused(400, "/IWBEP/CM_MGW_RT/010", message)


def _amount(value: Any, what: str) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise _invalid(f"Property '{what}' has invalid value '{value}'") from None


class Rules:
    def __init__(self, emulator: SapEmulator, *, unique_project_ids: bool,
                 duplicate_po_check: bool) -> None:
        self.emulator = emulator
        self.unique_project_ids = unique_project_ids
        self.duplicate_po_check = duplicate_po_check

    # -- bodies --------------------------------------------------------------------------
    @staticmethod
    def body(raw: bytes) -> dict[str, Any]:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            raise _invalid("The request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise _invalid("The request body must be a JSON object")
        body.pop("__metadata", None)
        return body

    @staticmethod
    def _known(entity: EntitySet, body: Mapping[str, Any]) -> None:
        for name in body:
            if entity.prop(name) is None and name not in entity.navs:
                raise _invalid(f"Property '{name}' is invalid for '{entity.type_name}'")

    def _rows(self, table: tuple[str, str]) -> dict[tuple[str, ...], dict[str, Any]]:
        return self.emulator.rows[table]

    def _find(self, table: tuple[str, str], field: str, value: Any) -> dict[str, Any] | None:
        return next((r for r in self._rows(table).values() if r.get(field) == value), None)

    # -- creates and updates -----------------------------------------------------------
    def create(self, service: Service, entity: EntitySet, body: dict[str, Any]
               ) -> dict[str, Any]:
        if not entity.creatable:
            raise Refused(405, "/IWBEP/CM_MGW_RT/011",
                          f"The entity set '{entity.name}' is not creatable")
        self._known(entity, body)
        table = (service.name, entity.name)
        if table == TIMESHEET and body.get("TimeSheetOperation") != "C":
            return self._timesheet_change(body)
        missing = [f for f in entity.required if body.get(f) in (None, "")]
        if missing:
            raise _invalid(f"Property '{missing[0]}' must be filled")
        self._validate(table, body)
        return self.emulator.insert(service.name, entity.name, body)

    def update(self, service: Service, entity: EntitySet, existing: dict[str, Any],
               body: dict[str, Any]) -> None:
        self._known(entity, body)
        changed = [k for k in entity.key if k in body and str(body[k]) != str(existing.get(k))]
        if changed:
            raise _invalid(f"Key property '{changed[0]}' cannot be changed")
        row = {**existing, **{k: v for k, v in body.items() if k not in entity.navs}}
        self._validate((service.name, entity.name), row, existing)
        if entity.stamp:
            row[entity.stamp] = query.json_instant(self.emulator.now())
        self.emulator.write(service.name, entity.name, row)

    def _validate(self, table: tuple[str, str], row: Mapping[str, Any],
                  existing: Mapping[str, Any] | None = None) -> None:
        checks = {BP: self._partner, PROJECT: self._project, TIMESHEET: self._timesheet,
                  MEMO: self._memo}
        check = checks.get(table)
        if check is not None:
            check(row, existing)

    def _partner(self, row: Mapping[str, Any], _existing: Mapping[str, Any] | None) -> None:
        if row.get("BusinessPartnerCategory") not in ("1", "2"):
            raise _invalid(f"Business partner category {row.get('BusinessPartnerCategory')!r} "
                           "does not exist")
        if row.get("BusinessPartnerCategory") == "2" and not row.get("OrganizationBPName1"):
            raise _invalid("Enter a name for the organization")

    def _project(self, row: Mapping[str, Any], existing: Mapping[str, Any] | None) -> None:
        if self.unique_project_ids and existing is None and \
                self._find(PROJECT, "Project", row.get("Project")) is not None:
            raise _invalid(f"Project {row.get('Project')} already exists")
        problems = {"CompanyCode": company.COMPANY_CODES,
                    "ProjectProfileCode": company.PROJECT_PROFILES,
                    "ResponsibleCostCenter": company.COST_CENTERS,
                    "ProfitCenter": company.PROFIT_CENTERS}
        for field, known in problems.items():
            if row.get(field) not in (None, "") and row.get(field) not in known:
                raise _invalid(f"{field} {row.get(field)} does not exist")
        customer = row.get("Customer")
        if customer and self._rows(BP).get((str(customer),)) is None:
            raise _invalid(f"Business partner {customer} does not exist")

    def _timesheet(self, row: Mapping[str, Any], _existing: Mapping[str, Any] | None) -> None:
        data = row.get("TimeSheetDataFields")
        if not isinstance(data, Mapping):
            raise _invalid("TimeSheetDataFields must be given")
        wbs = data.get("WBSElement")
        if self._find(PROJECT, "Project", wbs) is None:
            raise _invalid(f"WBS element {wbs} does not exist")
        hours = _amount(data.get("RecordedHours"), "RecordedHours")
        if hours <= 0 or hours > 24:
            raise _invalid(f"Recorded hours {hours} are not between 0 and 24")
        if row.get("CompanyCode") not in company.COMPANY_CODES:
            raise _invalid(f"Company code {row.get('CompanyCode')} does not exist")

    def _timesheet_change(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``U`` and ``D`` name an existing record by its key fields."""
        operation = body.get("TimeSheetOperation")
        entity = SERVICES[TIMESHEET[0]].sets[TIMESHEET[1]]
        key = self.emulator.key_of(entity, body)
        existing = self._rows(TIMESHEET).get(key)
        if operation not in ("U", "D"):
            raise _invalid(f"Time sheet operation {operation!r} is not valid")
        if existing is None:
            raise _invalid(f"Time sheet record {body.get('TimeSheetRecord')} does not exist")
        if operation == "D":
            self.emulator.remove(*TIMESHEET, key)
            return dict(body)
        row = {**existing, **body}
        self._timesheet(row, existing)
        self.emulator.write(*TIMESHEET, row)
        return dict(row)

    def _memo(self, row: Mapping[str, Any], _existing: Mapping[str, Any] | None) -> None:
        if row.get("SoldToParty") and self._rows(BP).get((str(row["SoldToParty"]),)) is None:
            raise _invalid(f"Sold-to party {row.get('SoldToParty')} does not exist")
        if row.get("SalesOrganization") not in company.SALES_ORGANIZATIONS:
            raise _invalid(f"Sales organization {row.get('SalesOrganization')} does not exist")
        if row.get("DebitMemoRequestType") not in company.DEBIT_MEMO_TYPES:
            raise _invalid(f"Sales document type {row.get('DebitMemoRequestType')} is not "
                           "defined")
        reference = row.get("PurchaseOrderByCustomer")
        if self.duplicate_po_check and reference and \
                self._find(MEMO, "PurchaseOrderByCustomer", reference) is not None:
            raise _invalid(f"Customer reference {reference} is already used (duplicate "
                           "purchase order check)")
        if _existing is not None:
            return
        items: list[dict[str, Any]] = (row.get("to_Item") or {}).get("results", [])
        if not items:
            raise _invalid("Debit memo request has no items")
        for item in items:
            if item.get("Material") not in company.MATERIALS:
                raise _invalid(f"Material {item.get('Material')} does not exist")
            _amount(item.get("NetAmount"), "NetAmount")

    def after_insert(self, service: str, name: str, row: dict[str, Any]) -> None:
        if (service, name) == MEMO:
            entity = SERVICES[service].sets[name]
            items = self.emulator.children(service, entity, "to_Item", row)
            row["TotalNetAmount"] = str(sum((_amount(i.get("NetAmount"), "NetAmount")
                                             for i in items), Decimal(0)))

    # -- the accountant's side -------------------------------------------------------------
    def bill(self, request_id: str) -> dict[str, Any]:
        with self.emulator.lock:
            memo = self._rows(MEMO)[(request_id,)]
            entity = SERVICES[MEMO[0]].sets[MEMO[1]]
            items = self.emulator.children(MEMO[0], entity, "to_Item", memo)
            document = self.emulator.insert(*BILLING, {
                "BillingDocumentType": "L2", "SoldToParty": memo["SoldToParty"],
                "TransactionCurrency": memo["TransactionCurrency"], "CompanyCode": "1010",
                "OverallBillingStatus": "C", "BillingDocumentIsCancelled": False,
                "BillingDocumentDate": query.json_date(self.emulator.now()),
                "TotalNetAmount": memo["TotalNetAmount"],
                "to_Item": {"results": [{
                    "BillingDocumentItem": item["DebitMemoRequestItem"],
                    "ReferenceSDDocument": request_id,
                    "ReferenceSDDocumentItem": item["DebitMemoRequestItem"],
                    "BillingDocumentItemText": item.get("DebitMemoRequestItemText"),
                    "NetAmount": item["NetAmount"]} for item in items]}})
            self.emulator.insert(*CUBE, {
                "CompanyCode": "1010", "FiscalYear": str(self.emulator.now().year),
                "AccountingDocument": document["BillingDocument"],
                "AccountingDocumentItem": "1", "AccountingDocumentItemType": "D",
                "Customer": memo["SoldToParty"], "BillingDocument": document["BillingDocument"],
                "TransactionCurrency": memo["TransactionCurrency"],
                "AmountInTransactionCurrency": memo["TotalNetAmount"],
                "ClearingAccountingDocument": "", "ClearingDate": None})
            return document

    def clear(self, document: str) -> dict[str, Any]:
        with self.emulator.lock:
            item = self._find(CUBE, "BillingDocument", document)
            if item is None:
                raise KeyError(document)
            numbers = sum(1 for r in self._rows(CUBE).values()
                          if r.get("ClearingAccountingDocument"))
            item.update({"ClearingAccountingDocument": str(1400000001 + numbers),
                         "ClearingDate": query.json_date(self.emulator.now())})
            return dict(item)

    def cancel(self, document: str) -> None:
        with self.emulator.lock:
            row = self._rows(BILLING)[(document,)]
            row.update({"BillingDocumentIsCancelled": True,
                        "LastChangeDateTime": query.json_instant(self.emulator.now())})
