"""The emulated Xero organisation: its chart of accounts, tax rates, tracking
categories, contacts, invoices, manual journals and payments, kept in memory
with the rules Xero applies when the API writes to them.

The rules that decide exactly-once are Xero's own: a contact name is unique
among active contacts, an ACCREC invoice number is unique among invoices not
deleted, a tracking option name is unique in its category, and nothing else
is: a manual journal sent twice is booked twice. The emulator's HTTP door is
``server.py``; this module knows nothing of HTTP.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from billbridge.connectors.fields import decimal_of
from billbridge.connectors.xero.mapping import parse_xero_datetime

CENT = Decimal("0.01")
ZERO = Decimal("0.00")  # Xero writes money with two places, 0.00 included
MAX_ACTIVE_CATEGORIES = 2
MAX_ACTIVE_OPTIONS = 100

DEFAULT_ACCOUNTS = {
    "200": ("Sales", "REVENUE"), "260": ("Other Revenue", "REVENUE"),
    "310": ("Cost of Goods Sold", "DIRECTCOSTS"), "400": ("Advertising", "OVERHEADS"),
    "477": ("Wages and Salaries", "OVERHEADS"), "610": ("Accounts Receivable", "CURRENT"),
    "800": ("Accounts Payable", "CURRLIAB"), "820": ("Sales Tax", "CURRLIAB"),
    "1210": ("Unbilled time (WIP)", "CURRENT"),
}
DEFAULT_TAX_RATES = {"NONE": Decimal(0), "OUTPUT": Decimal("0.10"), "OUTPUT2": Decimal("0.20"),
                     "EXEMPTOUTPUT": Decimal(0), "ECZROUTPUTSERVICES": Decimal(0),
                     "TAX001": Decimal("0.0825")}


class Invalid(ValueError):
    """What Xero would put in an element's ``ValidationErrors``."""

    def __init__(self, messages: Iterable[str]) -> None:
        self.messages = list(messages)
        super().__init__("; ".join(self.messages))


def r2(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _date(value: Any, default: date) -> date:
    if value in (None, ""):
        return default
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        parsed = parse_xero_datetime(value)
    except ValueError:
        parsed = None
    if parsed is None:
        raise Invalid([f"The date '{value}' is not a valid date"])
    return parsed.date()


def _same(a: Any, b: Any) -> bool:
    return str(a or "").strip().casefold() == str(b or "").strip().casefold()


class Organisation:
    """One tenant's books. Not thread-safe by itself: the emulator holds its
    lock around every call."""

    def __init__(self, *, name: str = "Acme Consulting Inc", base_currency: str = "USD",
                 currencies: Iterable[str] = ("USD", "EUR", "GBP"),
                 accounts: Mapping[str, tuple[str, str]] | None = None,
                 tax_rates: Mapping[str, Decimal] | None = None,
                 now: Callable[[], datetime] | None = None) -> None:
        self.name = name
        self.base_currency = base_currency
        self.currencies = {base_currency, *currencies}
        self.accounts = dict(accounts or DEFAULT_ACCOUNTS)
        self.tax_rates = dict(tax_rates or DEFAULT_TAX_RATES)
        self.organisation_id = str(uuid.uuid4())
        self._clock = now or (lambda: datetime.now(UTC))
        self._last = datetime(2000, 1, 1, tzinfo=UTC)
        self.contacts: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.journals: dict[str, dict[str, Any]] = {}
        self.categories: dict[str, dict[str, Any]] = {}
        self.payments: dict[str, dict[str, Any]] = {}
        self._numbers = 0

    def stamp(self) -> datetime:
        """UpdatedDateUTC: strictly increasing, to the millisecond as Xero's."""
        now = self._clock().astimezone(UTC)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        self._last = max(now, self._last + timedelta(milliseconds=1))
        return self._last

    def today(self) -> date:
        return self._clock().astimezone(UTC).date()

    # -- contacts ------------------------------------------------------------------
    def save_contact(self, given: Mapping[str, Any], app: str | None,
                     *, update: bool) -> dict[str, Any]:
        existing = self.contacts.get(str(given.get("ContactID") or "")) if update else None
        if given.get("ContactID") and existing is None:
            raise Invalid([f"The ContactID {given['ContactID']} could not be found"])
        record: dict[str, Any] = dict(existing) if existing else {
            "ContactID": str(uuid.uuid4()),
                                                  "ContactStatus": "ACTIVE", "_app": app}
        for name in ("Name", "ContactNumber", "DefaultCurrency", "TaxNumber", "EmailAddress",
                     "Addresses", "AccountNumber"):
            if name in given:
                record[name] = given[name]
        problems = []
        name = str(record.get("Name") or "").strip()
        if not name:
            problems.append("The contact name must be specified")
        elif any(_same(c["Name"], name) and c["ContactStatus"] == "ACTIVE"
                 and c["ContactID"] != record["ContactID"] for c in self.contacts.values()):
            problems.append(f"The contact name {name} is already assigned to another contact. "
                            "The contact name must be unique across all active contacts.")
        if len(str(record.get("ContactNumber") or "")) > 50:
            problems.append("The ContactNumber must be 50 characters or less")
        currency = record.get("DefaultCurrency")
        if currency and currency not in self.currencies:
            problems.append(f"The currency {currency} is not enabled for this organisation")
        if problems:
            raise Invalid(problems)
        record["UpdatedDateUTC"] = self.stamp()
        self.contacts[record["ContactID"]] = record
        return record

    def _contact_for(self, given: Any, app: str | None) -> dict[str, Any]:
        """An invoice's contact: by ContactID, else by name (Xero creates one
        when the name is new)."""
        if not isinstance(given, Mapping):
            raise Invalid(["A Contact must be specified"])
        if given.get("ContactID"):
            found = self.contacts.get(str(given["ContactID"]))
            if found is None:
                raise Invalid([f"The contact with ContactID {given['ContactID']} was not "
                               "found"])
            return found
        name = given.get("Name")
        for found in self.contacts.values():
            if name and _same(found["Name"], name) and found["ContactStatus"] == "ACTIVE":
                return found
        return self.save_contact({"Name": name}, app, update=False)

    # -- tracking ------------------------------------------------------------------
    def save_category(self, given: Mapping[str, Any]) -> dict[str, Any]:
        name = str(given.get("Name") or "").strip()
        active = [c for c in self.categories.values() if c["Status"] == "ACTIVE"]
        if not name:
            raise Invalid(["The tracking category name must be specified"])
        if any(_same(c["Name"], name) for c in self.categories.values()):
            raise Invalid([f"The tracking category name {name} is already in use"])
        if len(active) >= MAX_ACTIVE_CATEGORIES:
            raise Invalid([f"You can only have {MAX_ACTIVE_CATEGORIES} active tracking "
                           "categories"])
        record: dict[str, Any] = {"TrackingCategoryID": str(uuid.uuid4()), "Name": name,
                                  "Status": "ACTIVE", "Options": []}
        self.categories[record["TrackingCategoryID"]] = record
        return record

    def save_option(self, category_id: str, given: Mapping[str, Any],
                    option_id: str | None = None) -> dict[str, Any]:
        category = self.categories.get(category_id)
        if category is None:
            raise LookupError(category_id)
        options: list[dict[str, Any]] = category["Options"]
        option = next((o for o in options if o["TrackingOptionID"] == option_id), None)
        if option_id is not None and option is None:
            raise LookupError(option_id)
        name = str(given.get("Name") or (option or {}).get("Name") or "").strip()
        status = str(given.get("Status") or (option or {}).get("Status") or "ACTIVE")
        problems = []
        if not name:
            problems.append("The tracking option name must be specified")
        elif any(_same(o["Name"], name) and o is not option for o in options):
            problems.append(f"The tracking option name {name} already exists in "
                            f"{category['Name']}")
        if status not in ("ACTIVE", "ARCHIVED"):
            problems.append(f"Invalid tracking option status {status}")
        active = sum(1 for o in options if o["Status"] == "ACTIVE" and o is not option)
        if status == "ACTIVE" and active >= MAX_ACTIVE_OPTIONS:
            problems.append(f"You can only have {MAX_ACTIVE_OPTIONS} active options in "
                            f"tracking category {category['Name']}")
        if problems:
            raise Invalid(problems)
        if option is None:
            option = {"TrackingOptionID": str(uuid.uuid4())}
            options.append(option)
        option.update({"Name": name, "Status": status})
        return option

    def _tracking(self, lines: Any) -> list[dict[str, Any]]:
        """A line's tracking, resolved by name or id to active options."""
        resolved = []
        for item in lines or []:
            category = next((c for c in self.categories.values()
                             if c["TrackingCategoryID"] == item.get("TrackingCategoryID")
                             or _same(c["Name"], item.get("Name"))), None)
            option = None if category is None else next(
                (o for o in category["Options"] if o["Status"] == "ACTIVE" and (
                    o["TrackingOptionID"] == item.get("TrackingOptionID")
                    or _same(o["Name"], item.get("Option")))), None)
            if category is None or option is None:
                raise Invalid([f"The tracking option '{item.get('Option')}' of tracking "
                               f"category '{item.get('Name')}' does not exist or is not "
                               "active"])
            resolved.append({"Name": category["Name"], "Option": option["Name"],
                             "TrackingCategoryID": category["TrackingCategoryID"],
                             "TrackingOptionID": option["TrackingOptionID"]})
        if len(resolved) > 2:
            raise Invalid(["A line can have at most 2 tracking categories"])
        return resolved

    def _account(self, code: Any) -> None:
        if str(code) not in self.accounts:
            raise Invalid([f"Account code '{code}' is not a valid code for this document."])

    # -- manual journals ---------------------------------------------------------------
    def save_journal(self, given: Mapping[str, Any], app: str | None,
                     *, update: bool) -> dict[str, Any]:
        journal_id = str(given.get("ManualJournalID") or "")
        if update and journal_id:
            return self._journal_status(journal_id, str(given.get("Status") or ""))
        problems = []
        if not str(given.get("Narration") or "").strip():
            problems.append("Narration must be specified")
        lines: list[dict[str, Any]] = []
        for raw in given.get("JournalLines") or []:
            try:
                self._account(raw.get("AccountCode"))
                amount = r2(decimal_of(raw.get("LineAmount"), "LineAmount"))
                lines.append({"LineAmount": amount, "AccountCode": str(raw["AccountCode"]),
                              "Description": raw.get("Description") or "",
                              "Tracking": self._tracking(raw.get("Tracking")),
                              "TaxType": raw.get("TaxType") or "NONE", "TaxAmount": ZERO,
                              "IsBlank": False})
            except (Invalid, ValueError) as exc:
                problems += exc.messages if isinstance(exc, Invalid) else [str(exc)]
        debits = sum((x["LineAmount"] for x in lines if x["LineAmount"] > 0), ZERO)
        credits = -sum((x["LineAmount"] for x in lines if x["LineAmount"] < 0), ZERO)
        # The balance is judged only when every line was read: with a refused
        # line it would be a second, misleading complaint.
        if not problems and len(lines) < 2:
            problems.append("A manual journal must have at least two journal lines")
        elif not problems and debits != credits:
            problems.append(f"The total debits ({debits}) must equal total credits ({credits})")
        status = str(given.get("Status") or "DRAFT")
        if status not in ("DRAFT", "POSTED"):
            problems.append(f"A manual journal cannot be created with status {status}")
        try:
            on = _date(given.get("Date"), self.today())
        except Invalid as exc:
            problems += exc.messages
            on = self.today()
        if problems:
            raise Invalid(problems)
        record: dict[str, Any] = {
            "ManualJournalID": str(uuid.uuid4()), "Date": on, "Status": status,
                  "Narration": str(given["Narration"]),
                  "LineAmountTypes": given.get("LineAmountTypes") or "NoTax",
                  "JournalLines": lines, "ShowOnCashBasisReports": True,
                  "HasAttachments": False, "UpdatedDateUTC": self.stamp(), "_app": app}
        if given.get("Url"):
            record["Url"] = given["Url"]
        self.journals[record["ManualJournalID"]] = record
        return record

    def _journal_status(self, journal_id: str, status: str) -> dict[str, Any]:
        record = self.journals.get(journal_id)
        if record is None:
            raise Invalid([f"The ManualJournalID {journal_id} could not be found"])
        allowed = {"DRAFT": ("POSTED", "DELETED"), "POSTED": ("VOIDED",)}
        if status != record["Status"] and status not in allowed.get(record["Status"], ()):
            raise Invalid([f"A {record['Status']} manual journal cannot be changed to "
                           f"{status or 'no status'}"])
        record.update({"Status": status, "UpdatedDateUTC": self.stamp()})
        return record

    # -- invoices ----------------------------------------------------------------------
    def save_invoice(self, given: Mapping[str, Any], app: str | None,
                     *, update: bool) -> dict[str, Any]:
        if update:
            existing = self._invoice_by(given)
            if existing is not None:
                return self._update_invoice(existing, given)
        problems: list[str] = []
        kind = str(given.get("Type") or "")
        if kind not in ("ACCREC", "ACCPAY"):
            problems.append("Invoice Type must be ACCREC or ACCPAY")
        status = str(given.get("Status") or "DRAFT")
        if status not in ("DRAFT", "SUBMITTED", "AUTHORISED"):
            problems.append(f"An invoice cannot be created with status {status}")
        currency = str(given.get("CurrencyCode") or self.base_currency)
        if currency not in self.currencies:
            problems.append(f"The currency {currency} is not enabled for this organisation")
        number = str(given.get("InvoiceNumber") or "").strip()
        if kind == "ACCREC" and number and any(
                _same(i["InvoiceNumber"], number) and i["Type"] == "ACCREC"
                and i["Status"] != "DELETED" for i in self.invoices.values()):
            problems.append("Invoice # must be unique.")
        lines, line_problems = self._invoice_lines(given.get("LineItems"),
                                                   str(given.get("LineAmountTypes")
                                                       or "Exclusive"))
        problems += line_problems
        if status == "AUTHORISED" and not lines and not line_problems:
            problems.append("An authorised invoice must have at least one line item")
        contact: dict[str, Any] | None = None
        try:
            contact = self._contact_for(given.get("Contact"), app)
        except Invalid as exc:
            problems += exc.messages
        try:
            issued = _date(given.get("Date"), self.today())
            due = _date(given.get("DueDate"), issued) if given.get("DueDate") else None
        except Invalid as exc:
            problems += exc.messages
            issued, due = self.today(), None
        if problems or contact is None:
            raise Invalid(problems)
        if not number:
            self._numbers += 1
            number = f"INV-{self._numbers:04d}"
        record: dict[str, Any] = {
            "InvoiceID": str(uuid.uuid4()), "Type": kind, "InvoiceNumber": number,
            "Reference": str(given.get("Reference") or ""), "Status": status,
            "Contact": {"ContactID": contact["ContactID"], "Name": contact["Name"]},
            "Date": issued, "DueDate": due, "CurrencyCode": currency,
            "LineAmountTypes": str(given.get("LineAmountTypes") or "Exclusive"),
            "LineItems": lines, "AmountPaid": ZERO, "AmountCredited": ZERO,
            "Payments": [], "HasAttachments": False, "HasErrors": False, "_app": app}
        self._totals(record)
        record["UpdatedDateUTC"] = self.stamp()
        self.invoices[record["InvoiceID"]] = record
        return record

    def _invoice_by(self, given: Mapping[str, Any]) -> dict[str, Any] | None:
        """POST updates the invoice named by InvoiceID, or by InvoiceNumber."""
        if given.get("InvoiceID"):
            found = self.invoices.get(str(given["InvoiceID"]))
            if found is None:
                raise Invalid([f"The InvoiceID {given['InvoiceID']} could not be found"])
            return found
        return next((i for i in self.invoices.values()
                     if given.get("InvoiceNumber") and i["Status"] != "DELETED"
                     and _same(i["InvoiceNumber"], given["InvoiceNumber"])), None)

    def _invoice_lines(self, given: Any, amount_types: str
                       ) -> tuple[list[dict[str, Any]], list[str]]:
        lines, problems = [], []
        for raw in given or []:
            try:
                self._account(raw.get("AccountCode"))
                tax_type = str(raw.get("TaxType") or "NONE")
                if tax_type not in self.tax_rates:
                    raise Invalid([f"The TaxType code '{tax_type}' does not exist or cannot "
                                   "be used for this type of transaction."])
                quantity = decimal_of(raw.get("Quantity", 1), "Quantity")
                unit = r2(decimal_of(raw.get("UnitAmount"), "UnitAmount"))
                amount = r2(quantity * unit)
                if raw.get("LineAmount") is not None and \
                        r2(decimal_of(raw["LineAmount"], "LineAmount")) != amount:
                    raise Invalid([f"The line total {raw['LineAmount']} does not match the "
                                   f"expected line total {amount}"])
                rate = self.tax_rates[tax_type] if amount_types != "NoTax" else Decimal(0)
                tax = r2(amount * rate) if amount_types != "Inclusive" else \
                    r2(amount * rate / (1 + rate))
                lines.append({"LineItemID": str(uuid.uuid4()),
                              "Description": raw.get("Description") or "",
                              "Quantity": quantity, "UnitAmount": unit, "LineAmount": amount,
                              "AccountCode": str(raw["AccountCode"]), "TaxType": tax_type,
                              "TaxAmount": tax, "Tracking": self._tracking(raw.get("Tracking"))})
            except (Invalid, ValueError) as exc:
                problems += exc.messages if isinstance(exc, Invalid) else [str(exc)]
        return lines, problems

    @staticmethod
    def _totals(record: dict[str, Any]) -> None:
        lines = record["LineItems"]
        tax = sum((x["TaxAmount"] for x in lines), ZERO)
        gross = sum((x["LineAmount"] for x in lines), ZERO)
        subtotal = gross - tax if record["LineAmountTypes"] == "Inclusive" else gross
        record.update({"SubTotal": subtotal, "TotalTax": tax, "Total": subtotal + tax})
        record["AmountDue"] = record["Total"] - record["AmountPaid"] - record["AmountCredited"]

    def _update_invoice(self, record: dict[str, Any], given: Mapping[str, Any]
                        ) -> dict[str, Any]:
        status = str(given.get("Status") or record["Status"])
        allowed = {"DRAFT": {"SUBMITTED", "AUTHORISED", "DELETED"},
                   "SUBMITTED": {"DRAFT", "AUTHORISED", "DELETED"},
                   "AUTHORISED": {"VOIDED"}}
        if record["Status"] in ("PAID", "VOIDED", "DELETED") or (
                status != record["Status"] and status not in allowed[record["Status"]]):
            raise Invalid([f"Invoice not of valid status for modification (it is "
                           f"{record['Status']})"])
        if status == "VOIDED" and record["AmountPaid"] > 0:
            raise Invalid(["An invoice with payments cannot be voided"])
        if "Reference" in given:
            record["Reference"] = str(given["Reference"] or "")
        record.update({"Status": status, "UpdatedDateUTC": self.stamp()})
        return record

    # -- payments ------------------------------------------------------------------------
    def pay(self, invoice_id: str, amount: Decimal, on: date | None = None,
            reference: str = "") -> dict[str, Any]:
        invoice = self.invoices[invoice_id]
        if invoice["Status"] != "AUTHORISED":
            raise Invalid([f"Payment can only be made against an AUTHORISED invoice, not "
                           f"{invoice['Status']}"])
        if amount <= 0 or amount > invoice["AmountDue"]:
            raise Invalid([f"Payment amount {amount} must be positive and at most the "
                           f"amount due {invoice['AmountDue']}"])
        payment: dict[str, Any] = {"PaymentID": str(uuid.uuid4()), "Date": on or self.today(),
                   "Amount": r2(amount), "Reference": reference, "Status": "AUTHORISED",
                   "PaymentType": "ACCRECPAYMENT" if invoice["Type"] == "ACCREC"
                   else "ACCPAYPAYMENT", "IsReconciled": False,
                   "Invoice": {"InvoiceID": invoice_id, "InvoiceNumber":
                               invoice["InvoiceNumber"], "Type": invoice["Type"]},
                   "UpdatedDateUTC": self.stamp()}
        self.payments[payment["PaymentID"]] = payment
        self._settle(invoice)
        return payment

    def delete_payment(self, payment_id: str) -> dict[str, Any]:
        payment = self.payments[payment_id]
        payment.update({"Status": "DELETED", "UpdatedDateUTC": self.stamp()})
        self._settle(self.invoices[payment["Invoice"]["InvoiceID"]])
        return payment

    def _settle(self, invoice: dict[str, Any]) -> None:
        paid = [p for p in self.payments.values()
                if p["Invoice"]["InvoiceID"] == invoice["InvoiceID"] and p["Status"] != "DELETED"]
        invoice["AmountPaid"] = sum((p["Amount"] for p in paid), ZERO)
        invoice["Payments"] = [{"PaymentID": p["PaymentID"], "Amount": p["Amount"],
                                "Date": p["Date"]} for p in paid]
        self._totals(invoice)
        invoice["Status"] = "PAID" if invoice["AmountDue"] == 0 else "AUTHORISED"
        invoice["UpdatedDateUTC"] = self.stamp()
