"""The emulated QuickBooks Online company file: its records and the rules
QuickBooks applies when they are written, so a test against the emulator
proves what it would prove against QuickBooks.

The rules that matter for exactly-once are QuickBooks' own: a name
(``DisplayName``) is unique across customers, vendors and employees (6240), an
item name among items (6240), a ``DocNumber`` among invoices (6140); anything
else written twice is two records. Updates and deletes need the current
``SyncToken`` (5010). Queries accept only the fields QuickBooks lets one
filter on (4001). Everything is kept in memory; callers hold the emulator's lock.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from billbridge.connectors.quickbooks.emulator.query import Query, QueryError, run

NAME_LISTS = ("Customer", "Employee", "Vendor")  # one namespace of DisplayNames
ACTIVE_BY_DEFAULT = frozenset({*NAME_LISTS, "Item", "Account", "TaxCode"})
META = ("MetaData.CreateTime", "MetaData.LastUpdatedTime")
FILTERABLE: dict[str, frozenset[str]] = {
    "Customer": frozenset({"Id", "DisplayName", "GivenName", "FamilyName", "MiddleName",
                           "CompanyName", "FullyQualifiedName", "PrimaryEmailAddr", "Active",
                           "Balance", "Job", *META}),
    "Employee": frozenset({"Id", "DisplayName", "GivenName", "FamilyName", "Active", *META}),
    "Vendor": frozenset({"Id", "DisplayName", "GivenName", "FamilyName", "CompanyName",
                         "Active", "Balance", *META}),
    "Item": frozenset({"Id", "Name", "Active", "Type", "Sku", "FullyQualifiedName", *META}),
    "TimeActivity": frozenset({"Id", "TxnDate", *META}),
    "Invoice": frozenset({"Id", "DocNumber", "TxnDate", "DueDate", "CustomerRef", "Balance",
                          "TotalAmt", *META}),
    "Payment": frozenset({"Id", "TxnDate", "CustomerRef", "TotalAmt", *META}),
    "Account": frozenset({"Id", "Name", "AccountType", "Active", *META}),
    "TaxCode": frozenset({"Id", "Name", "Active"}),
}
DELETABLE = frozenset({"TimeActivity", "Invoice", "Payment"})
MONEY = frozenset({"Amount", "UnitPrice", "Qty", "HourlyRate", "CostRate", "TotalAmt",
                   "TotalTax", "Balance"})
WHOLE = frozenset({"Hours", "Minutes", "BreakHours", "BreakMinutes"})
COMPUTED = frozenset({"MetaData", "domain", "sparse", "FullyQualifiedName", "Balance",
                      "BalanceWithJobs", "Level", "IsProject", "HomeBalance", "HomeTotalAmt",
                      "status"})
DOC_NUMBER_LIMIT = 21


class Fault(Exception):
    """A QuickBooks fault: its HTTP status, code, message and detail."""

    def __init__(self, code: str, message: str, detail: str = "", *, status: int = 400,
                 kind: str = "ValidationFault") -> None:
        super().__init__(f"{code} {message}: {detail}")
        self.status, self.code, self.message, self.detail, self.kind = (status, code, message,
                                                                         detail, kind)

    def fault(self) -> dict[str, Any]:
        return {"Error": [{"Message": self.message, "Detail": self.detail, "code": self.code,
                           "element": ""}], "type": self.kind}


def missing(what: str) -> Fault:
    return Fault("2020", "Required param missing, need to supply the required value for the "
                 "API", f"Required parameter {what} is missing in the request")


def invalid_reference(what: str, value: Any) -> Fault:
    return Fault("2500", "Invalid Reference Id",
                 f"Invalid Reference Id : {what} assigned is not valid: {value}")


def _blank(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _normal(key: str, value: Any) -> Any:
    """Numbers as QuickBooks reads them: amounts as Decimal from a number or a
    decimal string (the SDK sends strings), hours and minutes as integers."""
    if isinstance(value, dict):
        return {k: _normal(k, v) for k, v in value.items() if not _blank(v)}
    if isinstance(value, list):
        return [_normal(key, v) for v in value]
    if key in MONEY or key in WHOLE:
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise Fault("2010", "Invalid Number", f"{key} is not a number: {value!r}") from None
        return int(number) if key in WHOLE else number
    return value


class Company:
    def __init__(self, *, home_currency: str = "USD", utc_offset: timedelta = timedelta(hours=-8),
                 today: Callable[[], date] | None = None) -> None:
        self.home_currency = home_currency
        self.zone = timezone(utc_offset)
        self.records: dict[str, dict[str, dict[str, Any]]] = {e: {} for e in FILTERABLE}
        self._ids = itertools.count(1)
        self._doc_numbers = itertools.count(1001)
        self._last = datetime(2020, 1, 1, tzinfo=self.zone)
        self.today = today or (lambda: datetime.now(self.zone).date())
        self.seed("Account", {"Name": "Services", "AccountType": "Income"})
        self.seed("Item", {"Name": "Services", "Type": "Service",
                           "IncomeAccountRef": {"value": "1"}})
        self.seed("TaxCode", {"Name": "TAX"}, record_id="TAX")
        self.seed("TaxCode", {"Name": "NON"}, record_id="NON")

    # -- time and identity -----------------------------------------------------------
    def stamp(self) -> str:
        """Now, in whole seconds and the company's UTC offset, as QuickBooks
        writes ``MetaData``: records changed in one second share a stamp."""
        now = max(self._last, datetime.now(self.zone).replace(microsecond=0))
        self._last = now
        return now.isoformat()

    def seed(self, entity: str, body: Mapping[str, Any], *, record_id: str | None = None,
             ) -> dict[str, Any]:
        """Store a record as it is, without QuickBooks' rules (fixtures)."""
        record = {"Active": True, **_normal("", dict(body)), "Id": record_id or self._next_id(),
                  "SyncToken": "0", "domain": "QBO", "sparse": False}
        if entity not in ACTIVE_BY_DEFAULT:
            record.pop("Active")
        record["MetaData"] = {"CreateTime": self.stamp(), "LastUpdatedTime": self.stamp()}
        self.records[entity][record["Id"]] = record
        return record

    def _next_id(self) -> str:
        return str(next(self._ids))

    def get(self, entity: str, record_id: Any) -> dict[str, Any] | None:
        return self.records.get(entity, {}).get(str(record_id))

    def _touch(self, record: dict[str, Any]) -> None:
        record["SyncToken"] = str(int(record["SyncToken"]) + 1)
        record["MetaData"] = {**record["MetaData"], "LastUpdatedTime": self.stamp()}

    # -- writes ----------------------------------------------------------------------
    def create(self, entity: str, body: Mapping[str, Any]) -> dict[str, Any]:
        if entity not in FILTERABLE or entity in ("Account", "TaxCode"):
            raise Fault("500", "Unsupported Operation", f"Operation create is not supported "
                        f"for {entity}")
        record = {k: v for k, v in _normal("", dict(body)).items() if k not in COMPUTED
                  and k not in ("Id", "SyncToken")}
        getattr(self, f"_check_{entity.lower()}")(record, None)
        record.update({"Id": self._next_id(), "SyncToken": "0", "domain": "QBO",
                       "sparse": False})
        stamp = self.stamp()
        record["MetaData"] = {"CreateTime": stamp, "LastUpdatedTime": stamp}
        self.records[entity][record["Id"]] = record
        if entity == "Payment":
            self._apply_payment(record)
        return record

    def _current(self, entity: str, body: Mapping[str, Any]) -> dict[str, Any]:
        record_id = body.get("Id")
        if _blank(record_id):
            raise missing("Id")
        record = self.get(entity, record_id)
        if record is None:
            raise Fault("610", "Object Not Found", f"Object Not Found : Something you're trying "
                        f"to use has been made inactive or deleted: {entity} {record_id}")
        if str(body.get("SyncToken")) != record["SyncToken"]:
            raise Fault("5010", "Stale Object Error", "Stale Object Error : You and another "
                        "user were working on this at the same time. The other user finished "
                        "before you did, so your work was not saved.")
        return record

    def update(self, entity: str, body: Mapping[str, Any]) -> dict[str, Any]:
        if entity not in FILTERABLE or entity in ("Account", "TaxCode", "Payment"):
            raise Fault("500", "Unsupported Operation", f"Operation update is not supported "
                        f"for {entity}")
        record = self._current(entity, body)
        changes = {k: v for k, v in _normal("", dict(body)).items() if k not in COMPUTED
                   and k not in ("Id", "SyncToken")}
        keep = {k: record[k] for k in ("Id", "SyncToken", "MetaData", "domain")}
        merged = {**record, **changes} if body.get("sparse") else {**changes}
        merged = {**{k: v for k, v in merged.items() if k not in COMPUTED}, **keep}
        paid = record["TotalAmt"] - record["Balance"] if entity == "Invoice" else Decimal(0)
        getattr(self, f"_check_{entity.lower()}")(merged, record["Id"])
        if entity == "Invoice":
            merged["Balance"] -= paid  # payments already received stay received
        merged["sparse"] = False
        record.clear()
        record.update(merged)
        self._touch(record)
        return record

    def delete(self, entity: str, body: Mapping[str, Any]) -> dict[str, Any]:
        if entity not in DELETABLE:
            raise Fault("500", "Unsupported Operation", f"Operation delete is not supported for "
                        f"{entity}; make it inactive instead")
        record = self._current(entity, body)
        del self.records[entity][record["Id"]]
        return {"Id": record["Id"], "status": "Deleted", "domain": "QBO"}

    def void(self, entity: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Voiding keeps the invoice, zeroes its amounts and puts ``Voided``
        in front of its private note."""
        if entity != "Invoice":
            raise Fault("500", "Unsupported Operation", f"Operation void is not supported for "
                        f"{entity}")
        record = self._current(entity, body)
        for line in record.get("Line") or []:
            line["Amount"] = Decimal(0)
            line.get("SalesItemLineDetail", {}).update({"Qty": Decimal(0)})
        note = str(record.get("PrivateNote") or "")
        record.update({"TotalAmt": Decimal(0), "Balance": Decimal(0),
                       "PrivateNote": f"Voided {note}".strip(),
                       "TxnTaxDetail": {"TotalTax": Decimal(0)}})
        self._touch(record)
        return record

    # -- queries -----------------------------------------------------------------------
    def query(self, query: Query) -> dict[str, Any]:
        allowed = FILTERABLE.get(query.entity)
        if allowed is None:
            raise Fault("4001", "Invalid query", f"QueryParserError: Invalid entity "
                        f"{query.entity}")
        for condition in query.where:
            if condition.field not in allowed:
                raise Fault("4001", "Invalid query", f"QueryValidationError: property "
                            f"'{condition.field}' is not queryable")
        rows = list(self.records[query.entity].values())
        if query.entity in ACTIVE_BY_DEFAULT and not query.filters("Active"):
            rows = [r for r in rows if r.get("Active", True)]
        if query.count:
            return {"totalCount": len(run(Query(query.entity, where=query.where,
                                                max_results=10**9), rows))}
        chosen = run(query, rows)
        if not chosen:
            return {}
        return {query.entity: chosen, "startPosition": query.start, "maxResults": len(chosen)}

    @staticmethod
    def parse_error(error: QueryError) -> Fault:
        return Fault("4001", "Invalid query", str(error))

    # -- QuickBooks' rules per entity ------------------------------------------------
    def _reference(self, entity: str, value: Any, what: str) -> dict[str, Any]:
        found = self.get(entity, value.get("value") if isinstance(value, dict) else value)
        if found is None or not found.get("Active", True):
            raise invalid_reference(what, value)
        return found

    def _unique_name(self, record: dict[str, Any], own_id: str | None) -> None:
        name = str(record["DisplayName"]).strip().lower()
        for entity in NAME_LISTS:
            for other in self.records[entity].values():
                if other["Id"] != own_id and str(other.get("DisplayName", "")).strip().lower() \
                        == name:
                    raise Fault("6240", "Duplicate Name Exists Error",
                                "The name supplied already exists. : Another customer, vendor "
                                f"or employee is already using this name ({other['Id']}). "
                                "Please use a different name.")

    def _display_name(self, record: dict[str, Any]) -> None:
        if _blank(record.get("DisplayName")):
            parts = [record.get(k) for k in ("Title", "GivenName", "MiddleName", "FamilyName",
                                             "Suffix")]
            composed = " ".join(str(p) for p in parts if not _blank(p)) or \
                record.get("CompanyName")
            if _blank(composed):
                raise missing("DisplayName")
            record["DisplayName"] = composed

    def _check_customer(self, record: dict[str, Any], own_id: str | None) -> None:
        self._display_name(record)
        self._unique_name(record, own_id)
        record.setdefault("Active", True)
        record.setdefault("Job", False)
        record.setdefault("CurrencyRef", {"value": self.home_currency})
        name, level = str(record["DisplayName"]), 0
        if record.get("Job"):
            if _blank(record.get("ParentRef")):
                raise missing("ParentRef")
            parent = self._reference("Customer", record["ParentRef"], "ParentRef")
            name, level = f"{parent['FullyQualifiedName']}:{name}", parent["Level"] + 1
        record.update({"FullyQualifiedName": name, "Level": level, "Balance": Decimal(0)})

    def _check_employee(self, record: dict[str, Any], own_id: str | None) -> None:
        self._display_name(record)
        self._unique_name(record, own_id)
        record.setdefault("Active", True)

    _check_vendor = _check_employee

    def _check_item(self, record: dict[str, Any], own_id: str | None) -> None:
        if _blank(record.get("Name")):
            raise missing("Name")
        for other in self.records["Item"].values():
            if other["Id"] != own_id and str(other["Name"]).lower() == str(record["Name"]).lower():
                raise Fault("6240", "Duplicate Name Exists Error", "The name supplied already "
                            "exists. : Another product or service is already using this name.")
        if record.get("Type", "Service") == "Service":
            if _blank(record.get("IncomeAccountRef")):
                raise missing("IncomeAccountRef")
            self._reference("Account", record["IncomeAccountRef"], "IncomeAccountRef")
        record.setdefault("Active", True)
        record.setdefault("Type", "Service")
        record["FullyQualifiedName"] = record["Name"]

    def _check_timeactivity(self, record: dict[str, Any], _own_id: str | None) -> None:
        kind = record.get("NameOf")
        if kind not in ("Employee", "Vendor"):
            raise (missing("NameOf") if _blank(kind) else
                   Fault("2170", "Invalid Enumeration", f"Invalid Enumeration : {kind}"))
        if _blank(record.get(f"{kind}Ref")):
            raise missing(f"{kind}Ref")
        self._reference(str(kind), record[f"{kind}Ref"], f"{kind}Ref")
        if not _blank(record.get("CustomerRef")):
            self._reference("Customer", record["CustomerRef"], "CustomerRef")
        if not _blank(record.get("ItemRef")):
            self._reference("Item", record["ItemRef"], "ItemRef")
        status = record.setdefault("BillableStatus", "NotBillable")
        if status not in ("Billable", "NotBillable", "HasBeenBilled"):
            raise Fault("2170", "Invalid Enumeration", f"Invalid Enumeration : {status}")
        if status == "Billable" and _blank(record.get("CustomerRef")):
            raise missing("CustomerRef")
        record["TxnDate"] = self._date(record.get("TxnDate"))
        record.setdefault("Hours", 0)
        record.setdefault("Minutes", 0)

    def _check_invoice(self, record: dict[str, Any], own_id: str | None) -> None:
        if _blank(record.get("CustomerRef")):
            raise missing("CustomerRef")
        customer = self._reference("Customer", record["CustomerRef"], "CustomerRef")
        currency = (record.get("CurrencyRef") or {}).get("value") or \
            customer["CurrencyRef"]["value"]
        if currency != customer["CurrencyRef"]["value"]:
            raise Fault("6000", "A business validation error has occurred while processing "
                        "your request", f"Business Validation Error: the transaction currency "
                        f"{currency} must be the customer's currency "
                        f"{customer['CurrencyRef']['value']}")
        lines = [line for line in record.get("Line") or [] if isinstance(line, dict)]
        if not lines:
            raise missing("Line")
        total = Decimal(0)
        for number, line in enumerate(lines, start=1):
            detail = line.get("SalesItemLineDetail")
            if line.get("DetailType") == "SalesItemLineDetail":
                if not isinstance(detail, dict) or _blank(detail.get("ItemRef")):
                    raise missing("SalesItemLineDetail.ItemRef")
                self._reference("Item", detail["ItemRef"], "ItemRef")
                if not _blank(detail.get("TaxCodeRef")):
                    self._reference("TaxCode", detail["TaxCodeRef"], "TaxCodeRef")
                total += line.get("Amount", Decimal(0))
            line.setdefault("Id", str(number))
            line["LineNum"] = number
        self._doc_number(record, own_id)
        tax = (record.get("TxnTaxDetail") or {}).get("TotalTax", Decimal(0))
        record.update({"CurrencyRef": {"value": currency}, "TotalAmt": total + tax,
                       "Balance": total + tax, "TxnDate": self._date(record.get("TxnDate"))})

    def _doc_number(self, record: dict[str, Any], own_id: str | None) -> None:
        number = record.get("DocNumber")
        if _blank(number):
            record["DocNumber"] = str(next(self._doc_numbers))
            return
        if len(str(number)) > DOC_NUMBER_LIMIT:
            raise Fault("2050", "String length is either shorter or longer than supported by "
                        "specification", f"DocNumber is at most {DOC_NUMBER_LIMIT} characters")
        for other in self.records["Invoice"].values():
            if other["Id"] != own_id and other.get("DocNumber") == number:
                raise Fault("6140", "Duplicate Document Number Error",
                            "Duplicate Document Number Error : You must specify a different "
                            f"number. This number has already been used. DocNumber={number} is "
                            f"assigned to TxnType=Invoice with TxnId={other['Id']}")

    def _check_payment(self, record: dict[str, Any], _own_id: str | None) -> None:
        if _blank(record.get("CustomerRef")):
            raise missing("CustomerRef")
        self._reference("Customer", record["CustomerRef"], "CustomerRef")
        if _blank(record.get("TotalAmt")):
            raise missing("TotalAmt")
        for line in record.get("Line") or []:
            for link in line.get("LinkedTxn") or []:
                invoice = self.get("Invoice", link.get("TxnId"))
                if link.get("TxnType") != "Invoice" or invoice is None:
                    raise Fault("620", "Transaction Cannot Be Linked", f"TxnId {link.get('TxnId')}")
                if line.get("Amount", Decimal(0)) > invoice["Balance"]:
                    raise Fault("6000", "A business validation error has occurred while "
                                "processing your request", "Business Validation Error: the "
                                "payment is more than the invoice's open balance")
        record["TxnDate"] = self._date(record.get("TxnDate"))

    def _apply_payment(self, payment: dict[str, Any]) -> None:
        """A payment lowers the balance of each invoice it is linked to, which
        changes the invoice (its SyncToken and LastUpdatedTime move)."""
        for line in payment.get("Line") or []:
            for link in line.get("LinkedTxn") or []:
                invoice = self.records["Invoice"][str(link["TxnId"])]
                invoice["Balance"] -= line.get("Amount", Decimal(0))
                invoice.setdefault("LinkedTxn", []).append({"TxnId": payment["Id"],
                                                            "TxnType": "Payment"})
                self._touch(invoice)

    def _date(self, value: Any) -> str:
        if _blank(value):
            return self.today().isoformat()
        try:
            return date.fromisoformat(str(value)[:10]).isoformat()
        except ValueError:
            raise Fault("2010", "Invalid Date", f"{value!r} is not a date") from None
