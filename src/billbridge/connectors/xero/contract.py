"""The fields the Xero source reads, as a contract (connectors.contracts):
invoices and payments with the fields the Accounting API documents (Xero
leaves empty ones out; amounts are JSON numbers, dates ``/Date(ms)/``
strings). The API version is Accounting ``2.0``."""

from __future__ import annotations

from billbridge.connectors.contracts import Contract, FieldSpec, FieldType, optional, required

S, N, B, OBJ, A = (FieldType.STRING, FieldType.NUMBER, FieldType.BOOLEAN, FieldType.OBJECT,
                   FieldType.ARRAY)

INVOICE: dict[str, FieldSpec] = {
    "InvoiceID": required(S), "Status": required(S), "UpdatedDateUTC": required(S),
    "InvoiceNumber": optional(S), "AmountPaid": optional(N), "Type": optional(S),
    "Contact": optional(OBJ), "LineItems": optional(A), "Date": optional(S),
    "DateString": optional(S), "DueDate": optional(S), "DueDateString": optional(S),
    "LineAmountTypes": optional(S), "Reference": optional(S), "BrandingThemeID": optional(S),
    "Url": optional(S), "CurrencyCode": optional(S), "CurrencyRate": optional(N),
    "SentToContact": optional(B), "ExpectedPaymentDate": optional(S),
    "PlannedPaymentDate": optional(S), "SubTotal": optional(N), "TotalTax": optional(N),
    "Total": optional(N), "TotalDiscount": optional(N), "RepeatingInvoiceID": optional(S),
    "HasAttachments": optional(B), "IsDiscounted": optional(B), "Payments": optional(A),
    "Prepayments": optional(A), "Overpayments": optional(A), "AmountDue": optional(N),
    "FullyPaidOnDate": optional(S), "AmountCredited": optional(N), "CreditNotes": optional(A),
    "Attachments": optional(A), "HasErrors": optional(B), "StatusAttributeString": optional(S),
    "ValidationErrors": optional(A), "Warnings": optional(A),
}

PAYMENT: dict[str, FieldSpec] = {
    "PaymentID": required(S), "Invoice": optional(OBJ), "UpdatedDateUTC": required(S),
    "Date": optional(S), "CurrencyRate": optional(N), "Amount": optional(N),
    "BankAmount": optional(N), "Reference": optional(S), "IsReconciled": optional(B),
    "Status": optional(S), "PaymentType": optional(S), "Account": optional(OBJ),
    "CreditNote": optional(OBJ), "Prepayment": optional(OBJ), "Overpayment": optional(OBJ),
    "HasAccount": optional(B), "HasValidationErrors": optional(B),
    "BatchPaymentID": optional(S), "BatchPayment": optional(OBJ),
}

CONTRACT = Contract("xero", "2.0", {"Invoice": INVOICE, "Payment": PAYMENT},
                    omits_empty=True)
