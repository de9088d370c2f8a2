"""A Salesforce connection's upgrade, previewed: each won deal
(``opportunity.closed_won``) becomes an Account and an Opportunity in the
Salesforce emulator and is read back by the Salesforce connector at the
version, so a field the version renames shows in the postings."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from billbridge.connectors.base import Malformed
from billbridge.connectors.salesforce.client import DEFAULT_VERSION, SalesforceClient
from billbridge.connectors.salesforce.emulator import SalesforceEmulator
from billbridge.connectors.salesforce.mapping import DEFAULT_FIELD_MAP, MappingConfig
from billbridge.connectors.salesforce.source import SalesforceSource
from billbridge.scenarios.upgrade import reading
from billbridge.scenarios.upgrade.reading import Chosen, Event

MONEY = ("Amount", "Budget_Cap__c")
"""Currency fields: seeded as Decimal, which the emulator answers as JSON
numbers with their digits, as Salesforce does."""


def account(customer: Mapping[str, Any]) -> dict[str, Any]:
    names = {c.partition(".")[2]: f for c, f in DEFAULT_FIELD_MAP.items()
             if c.startswith("customer.")}
    return {field: customer.get(name) for name, field in names.items()}


def opportunity(data: Mapping[str, Any], account_id: str) -> dict[str, Any]:
    parts = {"opportunity": data["opportunity"], "contract": data["contract"],
             "project": data["project"]}
    record: dict[str, Any] = {"AccountId": account_id, "StageName": "Closed Won", "IsWon": True}
    for canonical, field in DEFAULT_FIELD_MAP.items():
        part, _, name = canonical.partition(".")
        if part in parts and field not in record:
            record[field] = parts[part].get(name)
    for field in MONEY:
        value = record.get(field)
        record[field] = None if value in (None, "") else Decimal(str(value))
    return record


def read(deals: Chosen, version: str) -> dict[int, Event]:
    org = SalesforceEmulator()
    with reading.running(org):
        accounts: dict[str, str] = {}
        by_opportunity: dict[str, int] = {}
        for n, event in deals:
            customer = event["data"]["customer"]
            if str(customer["id"]) not in accounts:
                [accounts[str(customer["id"])]] = org.seed(
                    {"Account": [account(customer)]})["Account"]
            [made] = org.seed({"Opportunity": [opportunity(
                event["data"], accounts[str(customer["id"])])]})["Opportunity"]
            by_opportunity[made] = n
        client = SalesforceClient(org.url, client_id=org.client_id,
                                  client_secret=org.client_secret,
                                  refresh_token=org.refresh_token, version=version,
                                  rate_limit=reading.UNLIMITED)
        items = reading.read_all(SalesforceSource(
            client, config=MappingConfig(source="salesforce"), objects=("Opportunity",)))

    def place(item: Event | Malformed) -> int:
        return by_opportunity[str(item.raw.get("Id")) if isinstance(item, Malformed)
                              else str(item["data"]["opportunity"]["id"])]

    return reading.placed(items, place, deals,
                          lambda original, item: {**original, "data": item["data"]})


PREVIEW = reading.VendorPreview("opportunity.closed_won", f"v{DEFAULT_VERSION}", read)
