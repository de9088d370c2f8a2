"""What every CRM connector builds the same way: the canonical
``opportunity.closed_won`` event from the parts its vendor's mapping reads
(the customer, the opportunity, the contract terms, the project), the fields
without which a won deal cannot be one, and the vendor fields to ask for."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from billbridge.connectors.base import Malformed
from billbridge.connectors.contracts import FieldSpec, FieldType
from billbridge.connectors.fields import explain
from billbridge.domain.events import OpportunityClosedWon

# Without them a won deal cannot become a valid event; named in Malformed reasons.
REQUIRED_OPPORTUNITY_FIELDS = ("opportunity.amount", "opportunity.close_date",
                               "contract.billing_model", "contract.legal_entity",
                               "contract.start", "project.code")
REQUIRED_ACCOUNT_FIELDS = ("customer.name", "customer.billing_country")


def mapped_contract(field_map: Mapping[str, str], types: Mapping[str, FieldType], *,
                    customer: bool) -> dict[str, FieldSpec]:
    """The contract's fields for the mapped vendor fields of the customer or the
    deal (as ``vendor_fields`` reads them): each typed by ``types`` (canonical
    field → its vendor type; text otherwise), required when a won deal cannot
    be one without it."""
    needed = REQUIRED_ACCOUNT_FIELDS if customer else REQUIRED_OPPORTUNITY_FIELDS
    fields: dict[str, FieldSpec] = {}
    for canonical, name in field_map.items():
        if canonical.startswith("customer.") == customer:
            before = fields.get(name)
            fields[name] = FieldSpec(types.get(canonical, FieldType.STRING),
                                     canonical in needed or bool(before and before.required))
    return fields


def vendor_fields(always: Iterable[str], field_map: Mapping[str, str], *,
                  customer: bool) -> list[str]:
    """The vendor fields to read for one record: ``always`` and then the mapped
    ones of the customer (``customer.*``) or of the deal (the rest), once each."""
    mapped = [v for k, v in field_map.items() if k.startswith("customer.") == customer]
    return list(dict.fromkeys([*always, *mapped]))


def closed_won_event(*, source: str, event_id: str, at: str, what: str, raw: Any,
                     customer: Mapping[str, Any], opportunity: Mapping[str, Any],
                     contract: Mapping[str, Any],
                     project: Mapping[str, Any]) -> dict[str, Any] | Malformed:
    """``opportunity.closed_won``, its parts tied together (the opportunity and
    the contract belong to the customer, the contract to the opportunity) and
    validated; what does not validate is ``Malformed``, named by ``what`` (the
    vendor's record, e.g. "HubSpot deal 42"), with ``raw`` kept.

    ``opportunity`` carries id, name, amount, currency and close_date;
    ``contract`` its id and terms; ``project`` its code and name."""
    data = {
        "opportunity": {"id": opportunity["id"], "customer": customer["id"],
                        "name": opportunity["name"], "amount": opportunity["amount"],
                        "currency": opportunity["currency"], "stage": "closed_won",
                        "close_date": opportunity["close_date"]},
        "customer": dict(customer),
        "contract": {"id": contract["id"], "customer": customer["id"],
                     "opportunity": opportunity["id"],
                     **{k: v for k, v in contract.items() if k != "id"}},
        "project": dict(project),
    }
    try:
        OpportunityClosedWon.model_validate(data)
    except ValidationError as exc:
        return Malformed(raw, f"{what}: {explain(exc)}", event_id)
    return {"type": "opportunity.closed_won", "source": source, "id": event_id, "at": at,
            "data": data}
