"""Small helpers every vendor mapping needs: blank values, country names to
ISO codes, and validation errors as one readable line."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from billbridge.domain.events import explain as _explain
from billbridge.domain.records import Customer

COUNTRY_NAMES: dict[str, str] = {
    "united states": "US", "united states of america": "US", "usa": "US",
    "united kingdom": "GB", "uk": "GB", "great britain": "GB", "england": "GB",
    "germany": "DE", "deutschland": "DE", "france": "FR", "ireland": "IE",
    "netherlands": "NL", "spain": "ES", "italy": "IT", "canada": "CA", "australia": "AU",
    "japan": "JP", "switzerland": "CH", "sweden": "SE", "belgium": "BE",
}


def blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def country_code(value: Any) -> str | None:
    """ISO 3166 alpha-2 from a code or a common English name; anything else is
    returned as given, for validation to name."""
    if blank(value):
        return None
    text = str(value).strip()
    if len(text) == 2 and text.isalpha():
        return text.upper()
    return COUNTRY_NAMES.get(text.lower(), text)


def explain(error: ValidationError) -> str:
    return _explain(error, "record")


def customer_fields(record_id: str, *, name: Any, currency: Any, billing_country: Any,
                    tax_id: Any = None, legal_entity: Any = None) -> dict[str, Any] | str:
    """A canonical customer from a CRM's values, trimmed and validated, or
    what is wrong with it (for the vendor's mapping to prefix)."""
    record: dict[str, Any] = {
        "id": record_id,
        "name": str(name).strip(),
        "currency": str(currency).strip().upper(),
        "billing_country": country_code(billing_country),
    }
    if not blank(tax_id):
        record["tax_id"] = str(tax_id).strip()
    if not blank(legal_entity):
        record["legal_entity"] = str(legal_entity).strip()
    try:
        Customer.model_validate(record)
    except ValidationError as exc:
        return explain(exc)
    return record
