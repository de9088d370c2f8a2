"""The fields the SAP S/4HANA source reads, as a contract (connectors.contracts):
billing documents (``API_BILLING_DOCUMENT_SRV``, their items expanded and read
whole), the debit memo requests they bill and the operational accounting items
that clear them, each entity as its OData v2 service answers (``Edm.Decimal``
and dates as strings; ``__metadata`` is the envelope's). Field names of the
change stamp and references follow the connection's settings. Each service
is at the version its name carries (``API_ENTERPRISE_PROJECT_SRV;v=0002``;
the others at their first)."""

from __future__ import annotations

from billbridge.connectors.contracts import Contract, declare
from billbridge.connectors.sap_s4hana.mapping import SapSettings


def contract(settings: SapSettings | None = None) -> Contract:
    s = settings or SapSettings()
    return declare("sap-s4hana", "OData v2", f"""
A_BillingDocument A_DebitMemoRequest A_OperationalAcctgDocItemCube
  string  TransactionCurrency
A_BillingDocument A_DebitMemoRequest
  string  SoldToParty TotalNetAmount! LastChangeDateTime
A_BillingDocument A_OperationalAcctgDocItemCube
  string  CompanyCode
A_BillingDocument
  string  BillingDocument! BillingDocumentType OverallBillingStatus BillingDocumentDate
  string  {s.modified_field}!
  boolean BillingDocumentIsCancelled
  object  to_Item!
A_DebitMemoRequest
  string  DebitMemoRequest! DebitMemoRequestType SalesOrganization DistributionChannel
  string  OrganizationDivision {s.invoice_reference_field}
  object  to_Item
A_OperationalAcctgDocItemCube
  string  FiscalYear AccountingDocument AccountingDocumentItem AccountingDocumentItemType
  string  Customer {s.clearing_reference_field}! ClearingAccountingDocument ClearingDate
  string  AmountInTransactionCurrency
""", ignored={"__metadata"})
