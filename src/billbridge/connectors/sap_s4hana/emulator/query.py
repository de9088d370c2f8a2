"""OData 2.0 as SAP Gateway reads it, on the shared query language
(``billbridge.emulation.odata``): typed literals (``datetime'…'``,
``datetimeoffset'…'``, ``guid'…'``, decimals ``12.5M``), values in the 2.0
JSON form (``/Date(ms)/``), complex properties named by path
(``TimeSheetDataFields/TimeSheetNote``) and key segments with one unnamed
key (``A_BusinessPartner('10100001')``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from billbridge.emulation.odata import Dialect, ODataError, Predicate
from billbridge.emulation.odata import parse_filter as _parse_filter
from billbridge.emulation.odata import parse_key as _parse_key

_JSON_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
_TIME = re.compile(r"^(datetime|datetimeoffset)'(\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d+)?)?)"
                   r"(Z|[+-]\d\d:\d\d)?'$", re.IGNORECASE)
_GUID = re.compile(r"^guid'([0-9a-fA-F-]{36})'$")
_DECIMAL = re.compile(r"^(-?\d+(?:\.\d+)?)[mMdD]$")


def instant(value: datetime) -> str:
    """One spelling for comparisons: ``YYYY-MM-DDTHH:MM:SS.ffffff``, UTC."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def json_date(value: datetime) -> str:
    """An Edm.DateTime in 2.0 JSON."""
    return f"/Date({int(value.timestamp() * 1000)})/"


def json_instant(value: datetime) -> str:
    """An Edm.DateTimeOffset in 2.0 JSON, as SAP writes it."""
    return f"/Date({int(value.timestamp() * 1000)}+0000)/"


def from_json(value: Any) -> datetime | None:
    found = _JSON_DATE.match(str(value)) if isinstance(value, str) else None
    return None if found is None else datetime.fromtimestamp(int(found.group(1)) / 1000, tz=UTC)


def _number(text: str) -> Decimal:
    found = _DECIMAL.match(text)
    try:
        return Decimal(found.group(1) if found else text)
    except InvalidOperation:
        raise ValueError(text) from None


def _time(found: re.Match[str]) -> str:
    text = found.group(2) + (found.group(3) or "Z")
    return instant(datetime.fromisoformat(text.replace("Z", "+00:00")))


def comparable(value: Any) -> Any:
    moment = from_json(value)
    if moment is not None:
        return instant(moment)
    if isinstance(value, str):
        try:
            return Decimal(value) if re.fullmatch(r"-?\d+\.\d+", value) else value
        except InvalidOperation:
            return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Decimal(str(value))
    return value


GATEWAY = Dialect(
    number=_number,
    words=((_TIME, _time), (_GUID, lambda m: m.group(1).lower())),
    comparable=comparable,
    bad_literal="Invalid token '{text}' detected in $filter")


def flat(row: Mapping[str, Any]) -> dict[str, Any]:
    """The row with each complex property's fields also named by path."""
    out = dict(row)
    for name, value in row.items():
        if isinstance(value, Mapping) and name != "__metadata":
            out.update({f"{name}/{k}": v for k, v in value.items()})
    return out


def parse_filter(text: str | None) -> Predicate:
    predicate = _parse_filter(text, GATEWAY)
    return lambda row: predicate(flat(row))


def parse_key(segment: str, key: Sequence[str]) -> tuple[str, dict[str, Any] | None]:
    """``A_BusinessPartner('10100001')`` or ``Set(A='x',B='y')`` → (set,
    {field: value}); a bare set name → (set, None)."""
    name, paren, rest = segment.partition("(")
    if paren and "=" not in rest.split("'")[0] and len(key) == 1:
        value = GATEWAY.literal(rest.rstrip(")").strip())
        return name, {key[0]: str(value)}
    found, values = _parse_key(segment, GATEWAY)
    if values is None:
        return found, None
    return found, {k: str(v) for k, v in values.items()}


def ordered(rows: list[dict[str, Any]], terms: Sequence[tuple[str, bool]]
            ) -> list[dict[str, Any]]:
    def position(name: str) -> Callable[[Mapping[str, Any]], tuple[bool, Any]]:
        def key(row: Mapping[str, Any]) -> tuple[bool, Any]:
            value = flat(row).get(name)
            return (value is not None, "" if value is None else comparable(value))
        return key

    for name, desc in reversed(terms):
        rows = sorted(rows, key=position(name), reverse=desc)
    return rows


__all__ = ["GATEWAY", "ODataError", "comparable", "flat", "from_json", "instant", "json_date",
           "json_instant", "ordered", "parse_filter", "parse_key"]
