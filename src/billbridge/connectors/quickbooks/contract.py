"""The fields the QuickBooks source reads, as a contract (connectors.contracts).
Reads are ``select *``, so each entity declares the fields QuickBooks Online's
Invoice and Payment carry (Intuit's API reference) beside the ones the
mapping needs (required). QuickBooks leaves empty fields out, so an optional
field missing is no drift; the API version is the ``minorversion`` sent."""

from __future__ import annotations

from billbridge.connectors.contracts import Contract, FieldSpec, FieldType, optional, required

S, N, B, OBJ, A = (FieldType.STRING, FieldType.NUMBER, FieldType.BOOLEAN, FieldType.OBJECT,
                 FieldType.ARRAY)

COMMON: dict[str, FieldSpec] = {
    "Id": required(S), "SyncToken": optional(S), "MetaData": required(OBJ),
    "domain": optional(S), "sparse": optional(B), "TxnDate": optional(S),
    "CurrencyRef": optional(OBJ), "ExchangeRate": optional(N), "CustomerRef": optional(OBJ),
    "Line": optional(A), "TotalAmt": required(N), "PrivateNote": optional(S),
    "LinkedTxn": optional(A), "CustomField": optional(A), "DepartmentRef": optional(OBJ),
    "ProjectRef": optional(OBJ), "TxnSource": optional(S), "status": optional(S),
}

INVOICE: dict[str, FieldSpec] = {
    **COMMON, "Balance": required(N), "DocNumber": optional(S), "DueDate": optional(S),
    "TxnTaxDetail": optional(OBJ), "CustomerMemo": optional(OBJ), "BillAddr": optional(OBJ),
    "ShipAddr": optional(OBJ), "SalesTermRef": optional(OBJ), "BillEmail": optional(OBJ),
    "EmailStatus": optional(S), "PrintStatus": optional(S), "HomeBalance": optional(N),
    "HomeTotalAmt": optional(N), "ApplyTaxAfterDiscount": optional(B),
    "GlobalTaxCalculation": optional(S), "AllowOnlinePayment": optional(B),
    "AllowOnlineCreditCardPayment": optional(B), "AllowOnlineACHPayment": optional(B),
    "AllowIPNPayment": optional(B), "InvoiceLink": optional(S), "DeliveryInfo": optional(OBJ),
    "ClassRef": optional(OBJ), "Deposit": optional(N),
}

PAYMENT: dict[str, FieldSpec] = {
    **COMMON, "UnappliedAmt": optional(N), "ProcessPayment": optional(B),
    "PaymentRefNum": optional(S), "PaymentMethodRef": optional(OBJ),
    "DepositToAccountRef": optional(OBJ), "ARAccountRef": optional(OBJ),
}


def contract(minor_version: int | str) -> Contract:
    return Contract("quickbooks", f"minorversion={minor_version}",
                    {"Invoice": INVOICE, "Payment": PAYMENT}, omits_empty=True)
