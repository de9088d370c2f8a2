"""The fields the Dynamics 365 Finance source reads, as a contract
(connectors.contracts): the hub's free-text invoice headers and the customer
payment journal lines marked against them, as the ``/data`` entities answer
(every column of the entity: the source selects none). Entity and field names
follow the connection's settings; ``@odata.etag`` is metadata. Finance's data
entities carry no API version of their own (``/data`` follows the
environment's platform update), so the contract's version is ``data``."""

from __future__ import annotations

from billbridge.connectors.contracts import Contract, declare
from billbridge.connectors.dynamics_finance.mapping import FinanceSettings


def contract(settings: FinanceSettings | None = None) -> Contract:
    s = settings or FinanceSettings()
    return declare("dynamics-finance", "data", f"""
invoice_header payment_line
  string  dataAreaId! {s.modified_field}! CurrencyCode
invoice_header
  string  {s.invoice_key}! IsPosted! CustomerAccount InvoiceDate ProjectID
  number  TotalInvoiceAmount!
payment_line
  string  JournalBatchNumber! {s.payment_invoice_field}! AccountDisplayValue TransactionDate
  number  LineNumber! CreditAmount!
""", ignored={"@odata.etag"})
