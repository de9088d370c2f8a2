"""The columns the Dynamics 365 Sales source reads, as a contract
(connectors.contracts): opportunities and their accounts as the Dataverse Web
API answers a ``$select`` of them, column names from the connection's field
map. Choice and whole-number columns (``statecode``, ``versionnumber``, the
billing model's choice) and Money columns are numbers; dates and lookups
text. OData annotations (``@odata.etag``) are metadata, not
read. The client speaks Web API ``v9.2`` (its path) and no other."""

from __future__ import annotations

from billbridge.connectors.contracts import Contract, FieldType, declare
from billbridge.connectors.crm import mapped_contract
from billbridge.connectors.dynamics_sales.client import API_PATH
from billbridge.connectors.dynamics_sales.mapping import MappingConfig

TYPES = {"contract.billing_model": FieldType.NUMBER, "opportunity.amount": FieldType.NUMBER,
         "contract.budget_cap": FieldType.NUMBER}
"""Canonical fields whose column is not text: the billing model is a choice, the
deal's amount and budget cap Money columns (JSON numbers, read as Decimal)."""


def contract(config: MappingConfig | None = None) -> Contract:
    config = config or MappingConfig()
    base = declare("dynamics-sales", API_PATH.rsplit("/", 1)[-1], f"""
opportunity account
  number  versionnumber!
  string  modifiedon!
opportunity
  string  opportunityid! {config.account_lookup}
  number  statecode! statuscode
account
  string  accountid!
""", ignored={"@odata.etag", "@odata.context"})
    records = {kind: {**fields, **mapped_contract(config.field_map, TYPES,
                                                  customer=kind == "account")}
               for kind, fields in base.records.items()}
    return Contract(base.vendor, base.api_version, records, base.ignored)
