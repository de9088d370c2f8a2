"""HubSpot deals and companies ↔ canonical events.

The field mapping is data: canonical field → HubSpot property name, with the
defaults below, overridable per connection through ``options["field_map"]``.
A won deal (pipeline + stage as configured, ``default``/``closedwon`` by
default) with its associated company becomes ``opportunity.closed_won``; a
company becomes ``customer.upserted``. Anything that cannot be mapped becomes
``Malformed(raw, reason, event_id)``, never an exception. Event ids are
``deal:{id}:{hs_lastmodifieddate in ms}`` (``company:…`` for companies), so one
change seen by webhook and by poll is one event.
"""

from __future__ import annotations

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
from billbridge.connectors.fields import crm_customer

SOURCE = "hubspot"

DEFAULT_FIELD_MAP: dict[str, str] = {
    "opportunity.name": "dealname",
    "opportunity.amount": "amount",
    "opportunity.close_date": "closedate",
    "opportunity.currency": "deal_currency_code",
    "contract.billing_model": "billing_model",
    "contract.currency": "deal_currency_code",
    "contract.legal_entity": "legal_entity",
    "contract.start": "contract_start",
    "contract.end": "contract_end",
    "contract.rate_card": "rate_card",
    "contract.budget_cap": "budget_cap",
    "contract.expense_markup_pct": "expense_markup_pct",
    "contract.retainer.amount": "retainer_amount",
    "contract.retainer.period": "retainer_period",
    "contract.retainer.included_hours": "retainer_included_hours",
    "contract.retainer.overage_rate": "retainer_overage_rate",
    "project.code": "project_code",
    "project.name": "project_name",
    "customer.name": "name",
    "customer.billing_country": "country",
    "customer.tax_id": "tax_id",
    "customer.currency": "currency",
    "customer.legal_entity": "legal_entity",
}
"""Canonical field → HubSpot property. ``customer.*`` are company properties,
the rest deal properties."""


# HubSpot's default sales pipeline and its internal stage ids.
DEFAULT_PIPELINES: dict[str, tuple[str, ...]] = {
    "default": ("appointmentscheduled", "qualifiedtobuy", "presentationscheduled",
                "decisionmakerboughtin", "contractsent", "closedwon", "closedlost"),
}

# ``country`` is free text in HubSpot; the usual spellings of a few names.

_DIGITS = re.compile(r"^\d+$")


@dataclass(frozen=True)
class MappingConfig:
    source: str = SOURCE
    field_map: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_FIELD_MAP))
    won_stages: Mapping[str, str] = field(default_factory=lambda: {"default": "closedwon"})
    pipelines: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: dict(DEFAULT_PIPELINES))
    default_currency: str | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, source: str = SOURCE) -> MappingConfig:
        """``field_map`` (merged over the defaults), ``won_stages`` (pipeline →
        won stage id), ``pipelines`` (pipeline → known stage ids),
        ``won_pipeline``/``won_stage`` (shorthand for one pipeline) and
        ``default_currency`` (for portals without ``deal_currency_code``)."""
        field_map = {**DEFAULT_FIELD_MAP, **dict(options.get("field_map") or {})}
        won = {str(k): str(v) for k, v in dict(options.get("won_stages") or {}).items()}
        if options.get("won_stage"):
            won[str(options.get("won_pipeline") or "default")] = str(options["won_stage"])
        if not won:
            won = {"default": "closedwon"}
        pipelines = {k: tuple(v) for k, v in DEFAULT_PIPELINES.items()}
        for name, stages in dict(options.get("pipelines") or {}).items():
            pipelines[str(name)] = tuple(str(s) for s in stages)
        for name, stage in won.items():  # a won stage is always a known stage
            if stage not in pipelines.get(name, ()):
                pipelines[name] = (*pipelines.get(name, ()), stage)
        currency = options.get("default_currency")
        return cls(source=source, field_map=field_map, won_stages=won, pipelines=pipelines,
                   default_currency=str(currency) if currency else None)

    def prop(self, canonical: str) -> str:
        return self.field_map.get(canonical) or DEFAULT_FIELD_MAP[canonical]

    def deal_properties(self) -> list[str]:
        return vendor_fields(["hs_lastmodifieddate", "dealstage", "pipeline", "dealname",
                              "hs_object_id"], self.field_map, customer=False)

    def company_properties(self) -> list[str]:
        return vendor_fields(["hs_lastmodifieddate", "name", "hs_object_id"], self.field_map,
                             customer=True)


# -- value helpers ---------------------------------------------------------------
def to_ms(value: Any) -> int | None:
    """HubSpot datetimes: ISO 8601 in v3 properties, epoch ms in filters and
    some webhooks."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    if _DIGITS.match(text):
        return int(text)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def ms_to_iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def to_date(value: Any) -> str | None:
    """A HubSpot date or datetime property as an ISO date."""
    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip()
    if _DIGITS.match(text):
        return datetime.fromtimestamp(int(text) / 1000, UTC).date().isoformat()
    try:
        return date.fromisoformat(text[:10]).isoformat()
    except ValueError:
        return text  # left as is: validation names it



def _props(record: Mapping[str, Any]) -> Mapping[str, Any]:
    props = record.get("properties")
    return props if isinstance(props, Mapping) else {}



def deal_event_id(deal: Mapping[str, Any]) -> str:
    stamp = to_ms(_props(deal).get("hs_lastmodifieddate") or deal.get("updatedAt"))
    return f"deal:{deal.get('id')}:{stamp}"


def company_event_id(company: Mapping[str, Any]) -> str:
    stamp = to_ms(_props(company).get("hs_lastmodifieddate") or company.get("updatedAt"))
    return f"company:{company.get('id')}:{stamp}"



# -- deals -----------------------------------------------------------------------
def is_won(deal: Mapping[str, Any], config: MappingConfig) -> bool | Malformed:
    """True for a deal in its pipeline's won stage, False for a known other
    stage, ``Malformed`` for a pipeline or stage the connection does not know."""
    props = _props(deal)
    pipeline, stage = props.get("pipeline"), props.get("dealstage")
    deal_id = deal.get("id")
    if _blank(pipeline) or _blank(stage):
        return Malformed(dict(deal), f"HubSpot deal {deal_id}: property "
                         f"{'pipeline' if _blank(pipeline) else 'dealstage'} is missing",
                         deal_event_id(deal))
    known = config.pipelines.get(str(pipeline))
    if known is None:
        return Malformed(dict(deal), f"HubSpot deal {deal_id}: pipeline {pipeline!r} is not "
                         f"configured (known: {', '.join(sorted(config.pipelines))})",
                         deal_event_id(deal))
    if str(stage) not in known:
        return Malformed(dict(deal), f"HubSpot deal {deal_id}: dealstage {stage!r} is not a "
                         f"stage of pipeline {pipeline!r}", deal_event_id(deal))
    return config.won_stages.get(str(pipeline)) == str(stage)


def _currency(props: Mapping[str, Any], config: MappingConfig, canonical: str) -> Any:
    value = props.get(config.prop(canonical))
    return config.default_currency if _blank(value) else str(value).strip().upper()


def closed_won_event(deal: Mapping[str, Any], company: Mapping[str, Any] | None,
                     config: MappingConfig | None = None) -> dict[str, Any] | Malformed:
    """``opportunity.closed_won`` for a won deal and its associated company."""
    config = config or MappingConfig()
    deal_id = str(deal.get("id") or "")
    event_id = deal_event_id(deal)
    raw = {"deal": dict(deal), "company": dict(company) if company is not None else None}
    props = _props(deal)
    if not deal_id:
        return Malformed(raw, "HubSpot deal without an id", event_id)
    modified = to_ms(props.get("hs_lastmodifieddate") or deal.get("updatedAt"))
    if modified is None:
        return Malformed(raw, f"HubSpot deal {deal_id}: property hs_lastmodifieddate is "
                         "missing or not a date", event_id)
    missing = [f"{c} (property {config.prop(c)!r})" for c in REQUIRED_OPPORTUNITY_FIELDS
               if _blank(props.get(config.prop(c)))]
    if _blank(_currency(props, config, "opportunity.currency")):
        missing.append(f"opportunity.currency (property "
                       f"{config.prop('opportunity.currency')!r}, no default_currency)")
    if missing:
        return Malformed(raw, f"HubSpot deal {deal_id}: missing {', '.join(missing)}", event_id)
    if company is None:
        return Malformed(raw, f"HubSpot deal {deal_id}: no associated company", event_id)
    customer = customer_record(company, config, currency_hint=_currency(
        props, config, "opportunity.currency"), legal_entity_hint=props.get(
        config.prop("contract.legal_entity")))
    if isinstance(customer, str):
        return Malformed(raw, f"HubSpot deal {deal_id}: {customer}", event_id)

    def get(canonical: str) -> Any:
        value = props.get(config.prop(canonical))
        return None if _blank(value) else value

    contract: dict[str, Any] = {
        "id": f"hs-deal-{deal_id}",
        "billing_model": get("contract.billing_model"),
        "currency": _currency(props, config, "contract.currency"),
        "legal_entity": get("contract.legal_entity"),
        "start": to_date(get("contract.start")),
        "end": to_date(get("contract.end")),
        "budget_cap": get("contract.budget_cap"),
        "rate_card": get("contract.rate_card"),
    }
    if get("contract.expense_markup_pct") is not None:
        contract["expense_markup_pct"] = get("contract.expense_markup_pct")
    if get("contract.retainer.amount") is not None:
        contract["retainer"] = {
            "amount": get("contract.retainer.amount"),
            "period": get("contract.retainer.period") or "month",
            "included_hours": get("contract.retainer.included_hours"),
            "overage_rate": get("contract.retainer.overage_rate")}
    name = get("opportunity.name") or props.get("dealname") or f"HubSpot deal {deal_id}"
    return _closed_won(
        source=config.source, event_id=event_id, at=ms_to_iso(modified),
        what=f"HubSpot deal {deal_id}", raw=raw, customer=customer,
        opportunity={"id": deal_id, "name": name, "amount": get("opportunity.amount"),
                     "currency": _currency(props, config, "opportunity.currency"),
                     "close_date": to_date(get("opportunity.close_date"))},
        contract=contract,
        project={"code": get("project.code"), "name": get("project.name") or name})


# -- companies -------------------------------------------------------------------
def customer_record(company: Mapping[str, Any], config: MappingConfig, *,
                    currency_hint: Any = None,
                    legal_entity_hint: Any = None) -> dict[str, Any] | str:
    """The canonical customer of a company, or the reason it cannot be one."""
    props = _props(company)
    company_id = str(company.get("id") or "")
    missing = [f"{c} (company property {config.prop(c)!r})" for c in REQUIRED_ACCOUNT_FIELDS
               if _blank(props.get(config.prop(c)))]
    currency = props.get(config.prop("customer.currency"))
    if _blank(currency):
        currency = currency_hint if not _blank(currency_hint) else config.default_currency
    if _blank(currency):
        missing.append(f"customer.currency (company property "
                       f"{config.prop('customer.currency')!r}, no default_currency)")
    if not company_id or missing:
        return f"company {company_id or '?'}: missing {', '.join(missing) or 'id'}"
    return crm_customer("company", company_id, lambda name: props.get(config.prop(name)),
                        currency=currency, legal_entity_hint=legal_entity_hint)


def customer_event(company: Mapping[str, Any],
                   config: MappingConfig | None = None) -> dict[str, Any] | Malformed:
    """``customer.upserted`` for a company."""
    config = config or MappingConfig()
    event_id = company_event_id(company)
    modified = to_ms(_props(company).get("hs_lastmodifieddate") or company.get("updatedAt"))
    record = customer_record(company, config)
    if isinstance(record, str):
        return Malformed(dict(company), f"HubSpot {record}", event_id)
    if modified is None:
        return Malformed(dict(company), f"HubSpot company {company.get('id')}: property "
                         "hs_lastmodifieddate is missing or not a date", event_id)
    return {"type": "customer.upserted", "source": config.source, "id": event_id,
            "at": ms_to_iso(modified), "data": record}
