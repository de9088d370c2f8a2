"""The fields the QuickBooks source reads, as a contract (connectors.contracts).
Reads are ``select *``, so each entity declares the fields QuickBooks Online's
Invoice and Payment carry (Intuit's API reference) beside the ones the
mapping needs (required). QuickBooks leaves empty fields out, so an optional
field missing is no drift; the API version is the ``minorversion`` sent."""

from __future__ import annotations

from billbridge.connectors.contracts import Contract, fields_table

RECORDS = fields_table("""
Invoice Payment
  string  Id! SyncToken domain TxnDate PrivateNote TxnSource status
  number  ExchangeRate TotalAmt!
  boolean sparse
  object  MetaData! CurrencyRef CustomerRef DepartmentRef ProjectRef
  array   Line LinkedTxn CustomField
Invoice
  string  DocNumber DueDate EmailStatus PrintStatus GlobalTaxCalculation InvoiceLink
  number  Balance! HomeBalance HomeTotalAmt Deposit
  boolean ApplyTaxAfterDiscount AllowOnlinePayment AllowOnlineCreditCardPayment
  boolean AllowOnlineACHPayment AllowIPNPayment
  object  TxnTaxDetail CustomerMemo BillAddr ShipAddr SalesTermRef BillEmail
  object  DeliveryInfo ClassRef
Payment
  string  PaymentRefNum
  number  UnappliedAmt
  boolean ProcessPayment
  object  PaymentMethodRef DepositToAccountRef ARAccountRef
""")


def contract(minor_version: int | str) -> Contract:
    return Contract("quickbooks", f"minorversion={minor_version}", RECORDS, omits_empty=True)
