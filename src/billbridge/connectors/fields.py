"""Small helpers every vendor mapping needs: blank values, country names to
ISO codes, and validation errors as one readable line."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from billbridge.domain.events import explain as _explain

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
