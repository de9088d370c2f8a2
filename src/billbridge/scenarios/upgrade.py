"""An API version upgrade, previewed: when a proposal moves a connection to
another API version (``api_versions``), each scenario's CRM deals
(``opportunity.closed_won``) are put into that vendor's emulator and read
back by the real connector, once in the active version's shape and once in
the proposed one's, so `config diff` and the configuration preview show the
postings that would change. A deal that no longer maps is the scenario's
malformed event (an exception, its work parked), with its drift named."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from billbridge.connectors.base import Malformed, RateLimit
from billbridge.connectors.salesforce.client import DEFAULT_VERSION as SALESFORCE_VERSION
from billbridge.connectors.salesforce.client import SalesforceClient
from billbridge.connectors.salesforce.emulator import SalesforceEmulator
from billbridge.connectors.salesforce.mapping import DEFAULT_FIELD_MAP, MappingConfig
from billbridge.connectors.salesforce.source import SalesforceSource

Event = dict[str, Any]
Reader = Callable[[list[Event], str], list[Event]]


def _account(customer: Mapping[str, Any]) -> dict[str, Any]:
    names = {c.partition(".")[2]: f for c, f in DEFAULT_FIELD_MAP.items()
             if c.startswith("customer.")}
    return {field: customer.get(name) for name, field in names.items()}


def _opportunity(data: Mapping[str, Any], account_id: str) -> dict[str, Any]:
    parts = {"opportunity": data["opportunity"], "contract": data["contract"],
             "project": data["project"]}
    record: dict[str, Any] = {"AccountId": account_id, "StageName": "Closed Won", "IsWon": True}
    for canonical, field in DEFAULT_FIELD_MAP.items():
        part, _, name = canonical.partition(".")
        if part in parts and field not in record:
            record[field] = parts[part].get(name)
    # Salesforce answers currency fields as JSON numbers; the deal's amount is
    # informational (nothing is priced from it).
    record["Amount"] = float(record["Amount"]) if record.get("Amount") else None
    cap = record.get("Budget_Cap__c")
    record["Budget_Cap__c"] = None if cap in (None, "") else float(cap)
    return record


def salesforce(events: list[Event], version: str) -> list[Event]:
    """``events`` with every won deal replaced by what the Salesforce
    connector reads back from an org that holds it, at ``version``."""
    deals = [(n, e) for n, e in enumerate(events) if e.get("type") == "opportunity.closed_won"]
    if not deals:
        return events
    org = SalesforceEmulator()
    org.start()
    try:
        accounts: dict[str, str] = {}
        by_opportunity: dict[str, int] = {}
        for n, event in deals:
            customer = event["data"]["customer"]
            if str(customer["id"]) not in accounts:
                [accounts[str(customer["id"])]] = org.seed(
                    {"Account": [_account(customer)]})["Account"]
            [opportunity] = org.seed({"Opportunity": [_opportunity(
                event["data"], accounts[str(customer["id"])])]})["Opportunity"]
            by_opportunity[opportunity] = n
        client = SalesforceClient(org.url, client_id=org.client_id,
                                  client_secret=org.client_secret,
                                  refresh_token=org.refresh_token, version=version,
                                  rate_limit=RateLimit(10_000, 1, burst=10_000))
        source = SalesforceSource(client, config=MappingConfig(source="salesforce"),
                                  objects=("Opportunity",))
        read = [item for page in source.poll(None) for item in page.events]
    finally:
        org.stop()
    out = list(events)
    for item in read:
        if isinstance(item, Malformed):
            n = by_opportunity[str(item.raw.get("Id"))]
            out[n] = {**events[n], "data": {"unreadable": item.reason}}
        else:
            n = by_opportunity[str(item["data"]["opportunity"]["id"])]
            out[n] = {**events[n], "data": item["data"]}
    return out


READERS: dict[str, tuple[Reader, str]] = {"salesforce": (salesforce, f"v{SALESFORCE_VERSION}")}
"""Vendor → its reader through the emulator and the version a connection speaks
when none is pinned."""


def changed_versions(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """Connection → (active version, proposed version) for each connection a
    proposal moves, of the vendors an upgrade can be previewed for."""
    before, after = old.get("api_versions") or {}, new.get("api_versions") or {}
    changed = {}
    for name in sorted(set(before) | set(after)):
        if name in READERS and before.get(name) != after.get(name):
            default = READERS[name][1]
            changed[name] = (str(before.get(name) or default), str(after.get(name) or default))
    return changed


def read_through(events: list[Event], versions: Mapping[str, str]) -> list[Event]:
    """``events`` as each named connection's connector reads them at its version."""
    for name, version in versions.items():
        events = READERS[name][0](events, version)
    return events
