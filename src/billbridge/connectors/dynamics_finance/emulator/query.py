"""Finance's reading of the shared OData query language
(``billbridge.emulation.odata``), as ``/data`` documents it: ``has`` and
``in`` refused, wildcards in string ``eq`` (``Text eq '*[bb:…]*'``), enum
literals (``Microsoft.Dynamics.DataEntities.NoYes'Yes'``), date-times to the
microsecond, numbers as ``Decimal``, and key segments naming every key field
(``CustomersV3(dataAreaId='usmf',CustomerAccount='US-001')``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from billbridge.emulation.odata import DATETIME, Dialect, ODataError, Predicate, Row
from billbridge.emulation.odata import parse_filter as _parse_filter
from billbridge.emulation.odata import parse_key as _parse_key

_ENUM = re.compile(r"^Microsoft\.Dynamics\.DataEntities\.(\w+)'(\w+)'$")


def normal_datetime(text: str) -> str:
    """One spelling for comparisons: ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    core = text.replace("+00:00", "Z").rstrip("Z")
    whole, _, fraction = core.partition(".")
    if len(whole) == 16:
        whole += ":00"
    return f"{whole}.{(fraction + '000000')[:6]}Z"


def _number(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise ValueError(text) from None


def _comparable(value: Any) -> Any:
    if isinstance(value, str) and DATETIME.match(value):
        return normal_datetime(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Decimal(str(value))
    return value


FINANCE = Dialect(
    number=_number,
    words=((_ENUM, lambda m: m.group(2)),
           (DATETIME, lambda m: normal_datetime(m.group(0)))),
    comparable=_comparable, wildcards=True, refused=frozenset({"has", "in"}))


def parse_filter(text: str | None) -> Predicate:
    return _parse_filter(text, FINANCE)


def parse_key(segment: str) -> tuple[str, dict[str, Any] | None]:
    """``CustomersV3(dataAreaId='usmf',CustomerAccount='US-001')`` →
    (``CustomersV3``, {field: value}); ``CustomersV3`` → (``CustomersV3``, None)."""
    return _parse_key(segment, FINANCE)


def ordered(rows: list[dict[str, Any]], terms: Sequence[tuple[str, bool]]
            ) -> list[dict[str, Any]]:
    """``rows`` sorted by ``terms``, nulls first, values compared as filters
    compare them."""
    def position(name: str) -> Callable[[Row], tuple[bool, Any]]:
        def key(row: Row) -> tuple[bool, Any]:
            value = row.get(name)
            return (value is not None, "" if value is None else _comparable(value))
        return key

    for name, desc in reversed(terms):
        rows = sorted(rows, key=position(name), reverse=desc)
    return rows


__all__ = ["FINANCE", "ODataError", "normal_datetime", "ordered", "parse_filter", "parse_key"]
