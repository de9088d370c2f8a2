"""The fields the Oracle Fusion source reads, as a contract (connectors.contracts):
receivables invoices and standard receipts (their remittance references
expanded, read whole) as the REST resources answer them, amounts as numbers.
The stamp, total, balance and references fields follow the connection's
settings; ``links`` is the REST envelope's. The resources' version is the one
in their path, ``11.13.18.05``."""

from __future__ import annotations

from billbridge.connectors.contracts import Contract, declare
from billbridge.connectors.oracle_fusion.client import VERSION
from billbridge.connectors.oracle_fusion.mapping import OracleSettings


def contract(settings: OracleSettings | None = None) -> Contract:
    s = settings or OracleSettings()
    return declare("oracle-fusion", VERSION, f"""
invoice receipt
  string  CreationDate {s.modified_field}!
invoice
  number  CustomerTransactionId! {s.total_field} {s.balance_field}
  string  TransactionNumber! InvoiceStatus! BillToCustomerNumber BusinessUnit
  string  TransactionSource TransactionType TransactionDate PaymentTerms
  string  InvoiceCurrencyCode DueDate
receipt
  number  StandardReceiptId! Amount
  string  ReceiptNumber Currency ReceiptDate CustomerAccountNumber
  array   {s.receipt_references}
""", ignored={"links"})
