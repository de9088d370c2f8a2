"""The fields the Salesforce connector reads, as a contract (connectors.contracts):
per sObject, each field's JSON type and whether the mapping needs it. Field
names follow the connection's field map; the API version is the connection's
``version`` option (the path segment ``vNN.0``)."""

from __future__ import annotations

from billbridge.connectors.contracts import Contract, FieldSpec, FieldType, optional, required
from billbridge.connectors.crm import REQUIRED_ACCOUNT_FIELDS, REQUIRED_OPPORTUNITY_FIELDS
from billbridge.connectors.salesforce.mapping import MappingConfig

S, N, B = FieldType.STRING, FieldType.NUMBER, FieldType.BOOLEAN

TYPES: dict[str, FieldType] = {
    "opportunity.amount": N, "contract.budget_cap": N,
}
"""Canonical fields whose Salesforce type is not a string (dates are strings on the wire)."""

ALWAYS_OPPORTUNITY = {"Id": required(S), "SystemModstamp": required(S),
                      "StageName": required(S), "IsWon": optional(B), "AccountId": optional(S)}
ALWAYS_ACCOUNT = {"Id": required(S), "SystemModstamp": required(S)}


def _mapped(config: MappingConfig, *, customer: bool) -> dict[str, FieldSpec]:
    needed = REQUIRED_ACCOUNT_FIELDS if customer else REQUIRED_OPPORTUNITY_FIELDS
    return {config.name(c): FieldSpec(TYPES.get(c, S), c in needed)
            for c in config.field_map if c.startswith("customer.") == customer}


def contract(config: MappingConfig | None = None, *, version: str = "v61.0") -> Contract:
    config = config or MappingConfig()
    account = {**ALWAYS_ACCOUNT, **_mapped(config, customer=True)}
    # The Opportunity's Account relationship carries the account's fields; its Id and
    # stamp are read but the mapping takes the id from AccountId.
    related = {f"Account.{name}": spec for name, spec in account.items()}
    related.update({"Account.Id": optional(S), "Account.SystemModstamp": optional(S)})
    return Contract("salesforce", version, {
        "Opportunity": {**ALWAYS_OPPORTUNITY, **_mapped(config, customer=False), **related},
        "Account": account,
    }, ignored=frozenset({"attributes"}))
