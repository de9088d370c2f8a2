"""The fields the Salesforce connector reads, as a contract (connectors.contracts):
per sObject, each field's JSON type and whether the mapping needs it. Field
names follow the connection's field map; the API version is the connection's
``version`` option (the path segment ``vNN.0``)."""

from __future__ import annotations

from dataclasses import replace

from billbridge.connectors.contracts import Contract, FieldSpec, FieldType, optional, required
from billbridge.connectors.crm import mapped_contract
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
    return mapped_contract({c: config.name(c) for c in config.field_map}, TYPES,
                           customer=customer)


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


def message_contract(config: MappingConfig | None = None, *,
                     version: str = "v61.0") -> Contract:
    """What an Outbound Message carries when its fields are taken as the record
    (no API client to read it again): the sObject's own fields, each as text."""
    full = contract(config, version=version).as_text()
    return replace(full, records={kind: {n: s for n, s in fields.items() if "." not in n}
                                  for kind, fields in full.records.items()})
