"""Dataverse's reading of the shared OData query language
(``billbridge.emulation.odata``): GUID literals (compared in lower case),
date-times to the second (as Dataverse stores ``modifiedon``), whole and
decimal numbers, nulls first in ``$orderby``, primary-key segments
(``accounts(00000000-...)``) beside alternate keys
(``accounts(accountnumber='A-1')``), and keyset positions for the paging
tokens the emulator hands out in ``@odata.nextLink``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from billbridge.emulation.odata import (
    DATETIME,
    Dialect,
    ODataError,
    Predicate,
    Row,
)
from billbridge.emulation.odata import parse_filter as _parse_filter
from billbridge.emulation.odata import parse_key as _parse_key

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                  r"[0-9a-fA-F]{12}$")


def normal_datetime(text: str) -> str:
    """One spelling for comparisons: ``YYYY-MM-DDTHH:MM:SSZ`` (second precision,
    as Dataverse stores ``modifiedon``)."""
    core = text.replace("+00:00", "Z")
    if core.endswith("Z"):
        core = core[:-1]
    core = core.split(".")[0]
    if len(core) == 16:
        core += ":00"
    return core + "Z"


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def _comparable(value: Any) -> Any:
    if isinstance(value, str) and GUID.match(value):
        return value.lower()
    if isinstance(value, str) and DATETIME.match(value):
        return normal_datetime(value)
    return value


DATAVERSE = Dialect(
    number=_number,
    words=((GUID, lambda m: m.group(0).lower()),
           (DATETIME, lambda m: normal_datetime(m.group(0)))),
    comparable=_comparable,
    bad_literal="Syntax error: character '{text}' is not valid in $filter")


def parse_filter(text: str | None) -> Predicate:
    return _parse_filter(text, DATAVERSE)


def parse_key(segment: str) -> tuple[str, dict[str, Any] | str | None]:
    """``accounts(accountnumber='A-1',bb_region=3)`` → (``accounts``,
    {column: value}); ``accounts(<guid>)`` → (``accounts``, guid);
    ``accounts`` → (``accounts``, None)."""
    name, paren, rest = segment.partition("(")
    if paren and rest.endswith(")") and GUID.match(rest[:-1]):
        return name, rest[:-1].lower()
    return _parse_key(segment, DATAVERSE)


def sort_key(row: Row, terms: Sequence[tuple[str, bool]]) -> list[Any]:
    """The row's position under ``terms``: None first, as Dataverse sorts nulls."""
    return [[row.get(name) is not None, "" if row.get(name) is None else row.get(name)]
            for name, _desc in terms]


def after(row_key: list[Any], last: list[Any], terms: Sequence[tuple[str, bool]]) -> bool:
    """True when a row sorting at ``row_key`` comes after ``last`` (keyset paging)."""
    for (_name, desc), mine, theirs in zip(terms, row_key, last, strict=True):
        if mine == theirs:
            continue
        try:
            return bool(mine < theirs) if desc else bool(mine > theirs)
        except TypeError:
            return str(mine) > str(theirs)
    return False


__all__ = ["DATAVERSE", "GUID", "ODataError", "after", "normal_datetime", "parse_filter",
           "parse_key", "sort_key"]
