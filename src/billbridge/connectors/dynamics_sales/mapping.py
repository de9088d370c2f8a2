"""Dataverse opportunities and accounts ↔ canonical events.

The field mapping is data: canonical field → Dataverse column logical name,
with the defaults below (billbridge's own columns carry the ``bb_`` publisher
prefix, which a firm's solution may name differently), overridable per
connection through ``options["field_map"]``. A won opportunity
(``statecode`` 1) with its parent account becomes ``opportunity.closed_won``;
an open or lost one emits nothing. Lookups arrive as ``_<name>_value`` GUIDs;
a currency GUID is turned into its ISO code by the caller (``currency_of``).
Anything that cannot be mapped becomes ``Malformed(raw, reason, event_id)``.
Event ids are ``opportunity:{opportunityid}:{versionnumber}``: the row
version moves on every change, so one change seen by webhook and by poll (or
by a full re-read after a delta token expired) is one event.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from pydantic import ValidationError

from billbridge.connectors.base import Malformed
from billbridge.connectors.crm import (
    REQUIRED_ACCOUNT_FIELDS,
    REQUIRED_OPPORTUNITY_FIELDS,
    vendor_fields,
)
from billbridge.connectors.fields import blank as _blank
from billbridge.connectors.fields import crm_customer, instant
from billbridge.connectors.fields import explain as _explain
from billbridge.domain.events import OpportunityClosedWon

SOURCE = "dynamics-sales"
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                  r"[0-9a-fA-F]{12}$")
WON = 1  # opportunity statecode: 0 Open, 1 Won, 2 Lost

DEFAULT_FIELD_MAP: dict[str, str] = {
    "opportunity.name": "name",
    "opportunity.amount": "actualvalue",
    "opportunity.close_date": "actualclosedate",
    "opportunity.currency": "_transactioncurrencyid_value",
    "contract.billing_model": "bb_billingmodel",
    "contract.legal_entity": "bb_legalentity",
    "contract.start": "bb_contractstart",
    "contract.end": "bb_contractend",
    "contract.rate_card": "bb_ratecard",
    "contract.budget_cap": "bb_budgetcap",
    "project.code": "bb_projectcode",
    "project.name": "bb_projectname",
    "customer.name": "name",
    "customer.billing_country": "address1_country",
    "customer.tax_id": "bb_taxid",
    "customer.currency": "_transactioncurrencyid_value",
    "customer.legal_entity": "bb_legalentity",
}
"""Canonical field → column. ``customer.*`` are account columns, the rest
opportunity columns."""


DEFAULT_BILLING_MODELS: dict[str, str] = {
    "100000000": "time_and_materials", "100000001": "fixed_fee",
    "100000002": "retainer", "100000003": "milestone",
}
"""Choice value → billing model: the values a custom choice column gets by
default (publisher prefix 10000). Text values are read as the model's name."""

CurrencyOf = Callable[[str], str | None]


def _json_option(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


@dataclass(frozen=True)
class MappingConfig:
    source: str = SOURCE
    field_map: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_FIELD_MAP))
    billing_models: Mapping[str, str] = field(
        default_factory=lambda: dict(DEFAULT_BILLING_MODELS))
    account_lookup: str = "_parentaccountid_value"
    default_currency: str | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, source: str = SOURCE) -> MappingConfig:
        """``field_map`` and ``billing_models`` (JSON or mappings, merged over
        the defaults), ``account_lookup`` (the opportunity's lookup to its
        account: ``_parentaccountid_value`` or ``_customerid_value``) and
        ``default_currency``."""
        field_map = {**DEFAULT_FIELD_MAP, **{str(k): str(v) for k, v in dict(
            _json_option(options.get("field_map")) or {}).items()}}
        models = {**DEFAULT_BILLING_MODELS, **{str(k): str(v) for k, v in dict(
            _json_option(options.get("billing_models")) or {}).items()}}
        currency = options.get("default_currency")
        return cls(source=source, field_map=field_map, billing_models=models,
                   account_lookup=str(options.get("account_lookup") or "_parentaccountid_value"),
                   default_currency=str(currency).upper() if currency else None)

    def column(self, canonical: str) -> str:
        return self.field_map.get(canonical) or DEFAULT_FIELD_MAP[canonical]

    def opportunity_columns(self) -> list[str]:
        return vendor_fields(["opportunityid", "statecode", "statuscode", "modifiedon",
                              "versionnumber", self.account_lookup], self.field_map,
                             customer=False)

    def account_columns(self) -> list[str]:
        return vendor_fields(["accountid", "modifiedon", "versionnumber"], self.field_map,
                             customer=True)


parse_modifiedon = instant


def format_modifiedon(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _date(value: Any) -> Any:
    if _blank(value):
        return None
    try:
        return date.fromisoformat(str(value).strip()[:10]).isoformat()
    except ValueError:
        return str(value)  # left as is: validation names it


def event_id(opportunity: Mapping[str, Any]) -> str:
    return f"opportunity:{opportunity.get('opportunityid')}:{opportunity.get('versionnumber')}"


def is_won(opportunity: Mapping[str, Any]) -> bool | Malformed:
    """True for statecode 1 (Won), False for 0 (Open) and 2 (Lost)."""
    state = opportunity.get("statecode")
    if state in (0, 1, 2):
        return bool(state == WON)
    return Malformed(dict(opportunity), f"Dynamics opportunity {opportunity.get('opportunityid')}"
                     f": statecode {state!r} is not 0, 1 or 2 (read it with $select=statecode)",
                     event_id(opportunity))


def billing_model(value: Any, config: MappingConfig) -> Any:
    if _blank(value):
        return None
    text = str(value).strip()
    return config.billing_models.get(text) or text.lower().replace(" ", "_").replace(
        "&", "and")


def customer_record(account: Mapping[str, Any], config: MappingConfig, currency_of: CurrencyOf,
                    *, currency_hint: Any = None,
                    legal_entity_hint: Any = None) -> dict[str, Any] | str:
    """The canonical customer of an account, or the reason it cannot be one."""
    account_id = str(account.get("accountid") or "")
    missing = [f"{c} (column {config.column(c)})" for c in REQUIRED_ACCOUNT_FIELDS
               if _blank(account.get(config.column(c)))]
    currency_id = account.get(config.column("customer.currency"))
    currency = currency_of(str(currency_id)) if not _blank(currency_id) else None
    currency = currency or currency_hint or config.default_currency
    if _blank(currency):
        missing.append(f"customer.currency (column {config.column('customer.currency')}, "
                       "no default_currency)")
    if not account_id or missing:
        return f"account {account_id or '?'}: missing {', '.join(missing) or 'accountid'}"
    return crm_customer("account", account_id, lambda name: account.get(config.column(name)),
                        currency=currency, legal_entity_hint=legal_entity_hint)


def closed_won_event(opportunity: Mapping[str, Any], account: Mapping[str, Any] | None,
                     currency_of: CurrencyOf,
                     config: MappingConfig | None = None) -> dict[str, Any] | Malformed:
    """``opportunity.closed_won`` for a won opportunity and its account."""
    config = config or MappingConfig()
    opp_id = str(opportunity.get("opportunityid") or "")
    raw = {"opportunity": dict(opportunity),
           "account": dict(account) if account is not None else None}
    what = f"Dynamics opportunity {opp_id or '?'}"
    ident = event_id(opportunity)
    if not opp_id or _blank(opportunity.get("versionnumber")):
        return Malformed(raw, f"{what}: opportunityid and versionnumber are required", ident)
    modified = parse_modifiedon(opportunity.get("modifiedon"))
    if modified is None:
        return Malformed(raw, f"{what}: modifiedon is missing or not a date-time", ident)

    def get(canonical: str) -> Any:
        value = opportunity.get(config.column(canonical))
        return None if _blank(value) else value

    currency_id = get("opportunity.currency")
    currency = (currency_of(str(currency_id)) if currency_id else None) or \
        config.default_currency
    missing = [f"{c} (column {config.column(c)})" for c in REQUIRED_OPPORTUNITY_FIELDS
               if get(c) is None]
    if _blank(currency):
        missing.append(f"opportunity.currency (column {config.column('opportunity.currency')}"
                       f"{' ' + str(currency_id) + ' is no known currency' if currency_id else ''}"
                       ", no default_currency)")
    if missing:
        return Malformed(raw, f"{what}: missing {', '.join(missing)}", ident)
    if account is None:
        return Malformed(raw, f"{what}: no account ({config.account_lookup} "
                         f"{opportunity.get(config.account_lookup)!r} was not found)", ident)
    customer = customer_record(account, config, currency_of, currency_hint=currency,
                               legal_entity_hint=get("contract.legal_entity"))
    if isinstance(customer, str):
        return Malformed(raw, f"{what}: {customer}", ident)
    name = get("opportunity.name") or f"Dynamics opportunity {opp_id}"
    contract: dict[str, Any] = {
        "id": f"dyn-opp-{opp_id}", "customer": customer["id"], "opportunity": opp_id,
        "billing_model": billing_model(get("contract.billing_model"), config),
        "currency": currency, "legal_entity": get("contract.legal_entity"),
        "start": _date(get("contract.start")), "end": _date(get("contract.end")),
        "budget_cap": None if get("contract.budget_cap") is None
        else str(get("contract.budget_cap")),
        "rate_card": get("contract.rate_card"),
    }
    data = {
        "opportunity": {"id": opp_id, "customer": customer["id"], "name": name,
                        "amount": str(get("opportunity.amount")), "currency": currency,
                        "stage": "closed_won",
                        "close_date": _date(get("opportunity.close_date"))},
        "customer": customer, "contract": contract,
        "project": {"code": get("project.code"), "name": get("project.name") or name},
    }
    try:
        OpportunityClosedWon.model_validate(data)
    except ValidationError as exc:
        return Malformed(raw, f"{what}: {_explain(exc)}", ident)
    return {"type": "opportunity.closed_won", "source": config.source, "id": ident,
            "at": format_modifiedon(modified), "data": data}


# -- write-back -------------------------------------------------------------------
DEFAULT_WRITEBACK: dict[str, str] = {
    "erp_project_id": "opportunity.bb_erpprojectid",
    "project_code": "opportunity.bb_projectcode",
    "erp_customer_id": "account.bb_erpcustomerid",
    "invoice": "opportunity.bb_lastinvoice",
    "invoice_status": "opportunity.bb_invoicestatus",
    "invoice_total": "opportunity.bb_invoicetotal",
}
"""Write-back field → ``table.column``: where the activation and invoice
flows' values land (an account column is written on the opportunity's
account)."""


def writeback_columns(options: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """``options["writeback"]`` (JSON or a mapping) merged over the defaults,
    as field → (``opportunity`` | ``account``, column); an empty target drops a
    field."""
    merged = {**DEFAULT_WRITEBACK, **{str(k): str(v) for k, v in dict(
        _json_option(options.get("writeback")) or {}).items()}}
    out: dict[str, tuple[str, str]] = {}
    for name, target in merged.items():
        if not target:
            continue
        table, dot, column = target.partition(".")
        if not dot or table not in ("opportunity", "account") or not column:
            raise ValueError(f"writeback {name}: {target!r} must be opportunity.<column> or "
                             "account.<column>")
        out[name] = (table, column)
    return out


def writeback_value(value: Any) -> Any:
    """JSON values as Dataverse columns take them (text, numbers, booleans)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
