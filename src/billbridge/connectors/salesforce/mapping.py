"""Salesforce Opportunities and Accounts ↔ canonical events.

The field mapping is data: canonical field → Salesforce field API name, with
the defaults below, overridable per connection through
``options["field_map"]``. ``customer.*`` names are Account fields (read from
the Opportunity's ``Account`` relationship, or from an Account record); the
rest are Opportunity fields. A won Opportunity (``IsWon = true`` and a
``StageName`` among the configured won stages) becomes
``opportunity.closed_won``; an Account becomes ``customer.upserted``.
Anything that cannot be mapped becomes ``Malformed(raw, reason, event_id)``,
never an exception. Event ids are ``opportunity:{Id}:{SystemModstamp}``
(``account:…`` for Accounts) with the stamp normalised to
``YYYY-MM-DDTHH:MM:SS.mmmZ``, so one change seen by Outbound Message and by
poll is one event. The write-back map (``DEFAULT_WRITEBACK``, overridable
through ``options["writeback"]``) names the Opportunity field each value the
hub writes back lands in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from billbridge.connectors.base import Malformed
from billbridge.connectors.crm import (
    REQUIRED_ACCOUNT_FIELDS,
    REQUIRED_OPPORTUNITY_FIELDS,
    vendor_fields,
)
from billbridge.connectors.crm import closed_won_event as _closed_won
from billbridge.connectors.fields import blank as _blank
from billbridge.connectors.fields import customer_fields

SOURCE = "salesforce"

DEFAULT_FIELD_MAP: dict[str, str] = {
    "opportunity.name": "Name",
    "opportunity.amount": "Amount",
    "opportunity.close_date": "CloseDate",
    "opportunity.currency": "CurrencyIsoCode",
    "contract.billing_model": "Billing_Model__c",
    "contract.currency": "CurrencyIsoCode",
    "contract.legal_entity": "Legal_Entity__c",
    "contract.start": "Contract_Start__c",
    "contract.end": "Contract_End__c",
    "contract.rate_card": "Rate_Card__c",
    "contract.budget_cap": "Budget_Cap__c",
    "project.code": "Project_Code__c",
    "project.name": "Project_Name__c",
    "customer.name": "Name",
    "customer.billing_country": "BillingCountry",
    "customer.tax_id": "Tax_Id__c",
    "customer.currency": "CurrencyIsoCode",
}
"""Canonical field → Salesforce field API name."""

DEFAULT_WRITEBACK: dict[str, str] = {
    "erp_project_id": "BillBridge_ERP_Project_Id__c",
    "erp_customer_id": "BillBridge_ERP_Customer_Id__c",
    "project_code": "BillBridge_Project_Code__c",
    "invoice": "BillBridge_Last_Invoice__c",
    "invoice_status": "BillBridge_Invoice_Status__c",
    "invoice_total": "BillBridge_Invoice_Total__c",
}
"""Write-back field (what the activation and invoice flows send) → the
Opportunity field it is written to."""

_API_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


# Salesforce stores BillingCountry as text unless state/country picklists are on.

BILLING_MODELS: dict[str, str] = {
    "time and materials": "time_and_materials", "t&m": "time_and_materials",
    "fixed fee": "fixed_fee", "fixed price": "fixed_fee", "retainer": "retainer",
    "milestone": "milestone",
}


@dataclass(frozen=True)
class MappingConfig:
    source: str = SOURCE
    field_map: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_FIELD_MAP))
    won_stages: tuple[str, ...] = ("Closed Won",)
    default_currency: str | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, source: str = SOURCE) -> MappingConfig:
        """``field_map`` (merged over the defaults), ``won_stages`` (StageName
        values that count as won) and ``default_currency`` (orgs without
        multi-currency have no ``CurrencyIsoCode``)."""
        overrides = options.get("field_map") or {}
        if isinstance(overrides, str):  # from an environment variable: JSON
            overrides = json.loads(overrides)
        field_map = {**DEFAULT_FIELD_MAP, **{str(k): str(v) for k, v in dict(overrides).items()}}
        won = options.get("won_stages") or ("Closed Won",)
        if isinstance(won, str):  # "Closed Won,Won - Signed"
            won = [part.strip() for part in won.split(",") if part.strip()]
        stages = tuple(str(s) for s in won)
        currency = options.get("default_currency")
        return cls(source=source, field_map=field_map, won_stages=stages,
                   default_currency=str(currency) if currency else None)

    def name(self, canonical: str) -> str:
        return self.field_map.get(canonical) or DEFAULT_FIELD_MAP[canonical]

    def account_fields(self) -> list[str]:
        return vendor_fields(["Id", "SystemModstamp"], self.field_map, customer=True)

    def opportunity_fields(self) -> list[str]:
        account = [f"Account.{v}" for v in self.account_fields()]
        return vendor_fields(["Id", "SystemModstamp", "StageName", "IsWon", "AccountId"],
                             self.field_map, customer=False) + account


def _json_option(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) and value.strip() else value


def writeback_fields(options: Mapping[str, Any]) -> dict[str, str]:
    """``options["writeback"]`` (JSON or a mapping) merged over
    ``DEFAULT_WRITEBACK``: write-back field → Opportunity field API name; an
    empty name leaves that field unwritten."""
    given = _json_option(options.get("writeback")) or {}
    if not isinstance(given, Mapping):
        raise ValueError("salesforce option writeback must map write-back fields to "
                         "Opportunity field names, e.g. {\"invoice_status\": \"Status__c\"}")
    merged = {**DEFAULT_WRITEBACK, **{str(k): str(v or "") for k, v in given.items()}}
    for name, target in merged.items():
        if target and not _API_NAME.match(target):
            raise ValueError(f"salesforce option writeback: {name} -> {target!r} is not a "
                             "field API name (letters, digits and _)")
    return {name: target for name, target in merged.items() if target}


def writeback_key(options: Mapping[str, Any]) -> str:
    """The Opportunity field a write-back's record is matched on: ``Id`` (the
    record id the hub was told about) or an external id field."""
    key = str(options.get("writeback_key") or "Id")
    if not _API_NAME.match(key):
        raise ValueError(f"salesforce option writeback_key: {key!r} is not a field API name")
    return key


# -- value helpers ---------------------------------------------------------------
def parse_stamp(value: Any) -> datetime | None:
    """A Salesforce datetime: ``2026-03-05T10:00:00.000+0000`` (REST) or
    ``2026-03-05T10:00:00.000Z`` (SOAP, SOQL literals)."""
    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip().replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":
        text = text[:-2] + ":" + text[-2:]  # +0000 → +00:00
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_stamp(moment: datetime) -> str:
    """The one spelling used in event ids, cursors and SOQL literals."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def normal_stamp(value: Any) -> str | None:
    parsed = parse_stamp(value)
    return None if parsed is None else format_stamp(parsed)



def _to_date(value: Any) -> Any:
    if _blank(value):
        return None
    text = str(value).strip()
    try:
        return date.fromisoformat(text[:10]).isoformat()
    except ValueError:
        return text  # left as is: validation names it



def billing_model(value: Any) -> Any:
    if _blank(value):
        return None
    text = str(value).strip()
    return BILLING_MODELS.get(text.lower(), text.lower().replace(" ", "_"))



def _plain(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (_plain(v) if isinstance(v, Mapping) else v) for k, v in record.items()}


def opportunity_event_id(record: Mapping[str, Any]) -> str:
    return f"opportunity:{record.get('Id')}:{normal_stamp(record.get('SystemModstamp'))}"


def account_event_id(record: Mapping[str, Any]) -> str:
    return f"account:{record.get('Id')}:{normal_stamp(record.get('SystemModstamp'))}"


# -- accounts --------------------------------------------------------------------
def customer_record(account: Mapping[str, Any], config: MappingConfig, *,
                    currency_hint: Any = None, legal_entity_hint: Any = None,
                    what: str = "Account") -> dict[str, Any] | str:
    """The canonical customer of an Account, or the reason it cannot be one."""
    account_id = str(account.get("Id") or "")
    missing = [f"{c} (field {config.name(c)})" for c in REQUIRED_ACCOUNT_FIELDS
               if _blank(account.get(config.name(c)))]
    currency = account.get(config.name("customer.currency"))
    if _blank(currency):
        currency = currency_hint if not _blank(currency_hint) else config.default_currency
    if _blank(currency):
        missing.append(f"customer.currency (field {config.name('customer.currency')}, "
                       "no default_currency)")
    if not account_id:
        missing.insert(0, "Id")
    if missing:
        return f"{what} {account_id or '?'}: missing {', '.join(missing)}"
    record = customer_fields(
        account_id, name=account.get(config.name("customer.name")), currency=currency,
        billing_country=account.get(config.name("customer.billing_country")),
        tax_id=account.get(config.name("customer.tax_id")), legal_entity=legal_entity_hint)
    return f"{what} {account_id}: {record}" if isinstance(record, str) else record


def customer_event(account: Mapping[str, Any],
                   config: MappingConfig | None = None) -> dict[str, Any] | Malformed:
    """``customer.upserted`` for an Account."""
    config = config or MappingConfig()
    event_id = account_event_id(account)
    modified = normal_stamp(account.get("SystemModstamp"))
    record = customer_record(account, config, what="Salesforce Account")
    if isinstance(record, str):
        return Malformed(_plain(account), record, event_id)
    if modified is None:
        return Malformed(_plain(account), f"Salesforce Account {account.get('Id')}: field "
                         "SystemModstamp is missing or not a datetime", event_id)
    return {"type": "customer.upserted", "source": config.source, "id": event_id,
            "at": modified, "data": record}


# -- opportunities ---------------------------------------------------------------
def closed_won_event(opportunity: Mapping[str, Any],
                     config: MappingConfig | None = None) -> dict[str, Any] | Malformed:
    """``opportunity.closed_won`` for a won Opportunity read with its
    ``Account`` relationship fields."""
    config = config or MappingConfig()
    raw = _plain(opportunity)
    opp_id = str(opportunity.get("Id") or "")
    event_id = opportunity_event_id(opportunity)
    what = f"Salesforce Opportunity {opp_id or '?'}"
    if not opp_id:
        return Malformed(raw, "Salesforce Opportunity without an Id", event_id)
    modified = normal_stamp(opportunity.get("SystemModstamp"))
    if modified is None:
        return Malformed(raw, f"{what}: field SystemModstamp is missing or not a datetime",
                         event_id)
    stage = opportunity.get("StageName")
    if _blank(stage) or str(stage) not in config.won_stages:
        return Malformed(raw, f"{what}: StageName {stage!r} is not a configured won stage "
                         f"(won stages: {', '.join(config.won_stages)})", event_id)
    if opportunity.get("IsWon") is False:
        return Malformed(raw, f"{what}: StageName {stage!r} is a won stage but IsWon is "
                         "false", event_id)

    def get(canonical: str) -> Any:
        value = opportunity.get(config.name(canonical))
        return None if _blank(value) else value

    currency = get("opportunity.currency") or config.default_currency
    missing = [f"{c} (field {config.name(c)})" for c in REQUIRED_OPPORTUNITY_FIELDS
               if get(c) is None]
    if _blank(currency):
        missing.append(f"opportunity.currency (field {config.name('opportunity.currency')}, "
                       "no default_currency)")
    if missing:
        return Malformed(raw, f"{what}: missing {', '.join(missing)}", event_id)
    account = opportunity.get("Account")
    if not isinstance(account, Mapping):
        return Malformed(raw, f"{what}: no Account (AccountId "
                         f"{opportunity.get('AccountId')!r})", event_id)
    account = {"Id": opportunity.get("AccountId"), **account}
    customer = customer_record(account, config, currency_hint=currency,
                               legal_entity_hint=get("contract.legal_entity"))
    if isinstance(customer, str):
        return Malformed(raw, f"{what}: {customer}", event_id)
    contract_currency = get("contract.currency") or currency
    name = get("opportunity.name") or f"Salesforce Opportunity {opp_id}"
    contract = {
        "id": f"sf-opp-{opp_id}",
        "billing_model": billing_model(get("contract.billing_model")),
        "currency": str(contract_currency).strip().upper(),
        "legal_entity": get("contract.legal_entity"),
        "start": _to_date(get("contract.start")),
        "end": _to_date(get("contract.end")),
        "budget_cap": None if get("contract.budget_cap") is None
        else str(get("contract.budget_cap")),
        "rate_card": get("contract.rate_card"),
    }
    return _closed_won(
        source=config.source, event_id=event_id, at=modified, what=what, raw=raw,
        customer=customer,
        opportunity={"id": opp_id, "name": name, "amount": str(get("opportunity.amount")),
                     "currency": str(currency).strip().upper(),
                     "close_date": _to_date(get("opportunity.close_date"))},
        contract=contract,
        project={"code": get("project.code"), "name": get("project.name") or name})
