"""The read side of the emulated gateway: the ``query`` function's
``<filter>`` (equalto, notequalto, lessthan[orequalto], greaterthan[orequalto],
like, in, notin, isnull, isnotnull, and, or), its ``<orderby>``, and
``readByQuery``'s ``FIELD = 'value' [AND ...]`` text."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

Row = Mapping[str, Any]
COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "equalto": lambda a, b: a == b, "notequalto": lambda a, b: a != b,
    "lessthan": lambda a, b: a < b, "lessthanorequalto": lambda a, b: a <= b,
    "greaterthan": lambda a, b: a > b, "greaterthanorequalto": lambda a, b: a >= b}


class QueryError(ValueError):
    """A query Intacct would refuse; the message is its description2."""


def sortable(value: Any) -> tuple[int, Any]:
    """A field's value as Intacct compares it: numbers as numbers, its
    ``MM/DD/YYYY[ HH:MM:SS]`` dates as dates, the rest as text."""
    text = "" if value is None else str(value)
    for form in ("%m/%d/%Y %H:%M:%S", "%m/%d/%Y"):
        try:
            return (1, datetime.strptime(text, form))
        except ValueError:
            pass
    try:
        return (0, Decimal(text))
    except InvalidOperation:
        return (2, text)


def like(pattern: str) -> re.Pattern[str]:
    escaped = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.compile(f"^{escaped}$", re.DOTALL)


def condition(node: ET.Element) -> Callable[[Row], bool]:
    """The predicate of one filter element."""
    op = node.tag
    if op in ("and", "or"):
        parts = [condition(child) for child in node]
        if not parts:
            raise QueryError(f"<{op}> needs conditions")
        return (lambda row: all(p(row) for p in parts)) if op == "and" else \
            (lambda row: any(p(row) for p in parts))
    field = node.findtext("field")
    if not field:
        raise QueryError(f"<{op}> has no <field>")
    values = [v.text or "" for v in node.findall("value")]
    if op == "isnull":
        return lambda row: not row.get(field)
    if op == "isnotnull":
        return lambda row: bool(row.get(field))
    if op in ("in", "notin"):
        wanted = {sortable(v) for v in values}
        return (lambda row: sortable(row.get(field)) in wanted) if op == "in" else \
            (lambda row: sortable(row.get(field)) not in wanted)
    if not values:
        raise QueryError(f"<{op}> on {field} has no <value>")
    if op == "like":
        found = like(values[0])
        return lambda row: bool(found.match(str(row.get(field) or "")))
    compare = COMPARE.get(op)
    if compare is None:
        raise QueryError(f"unknown filter operator <{op}>")
    right = sortable(values[0])

    def check(row: Row) -> bool:
        left = sortable(row.get(field))
        return left[0] == right[0] and compare(left, right)
    return check


def order(rows: list[dict[str, Any]], node: ET.Element | None) -> list[dict[str, Any]]:
    if node is None:
        return sorted(rows, key=lambda r: sortable(r.get("RECORDNO")))
    for spec in reversed(node.findall("order")):
        field = spec.findtext("field") or "RECORDNO"
        rows = sorted(rows, key=lambda r, f=field: sortable(r.get(f)),  # type: ignore[misc]
                      reverse=spec.find("descending") is not None)
    return rows


CLAUSE = re.compile(r"^\s*(\w+)\s*=\s*'((?:[^']|'')*)'\s*$")


def read_by_query(text: str | None) -> Callable[[Row], bool]:
    """``readByQuery``'s query: ``FIELD = 'value'`` clauses joined by AND
    (what the emulator needs; Intacct's language is wider)."""
    if not text or not text.strip():
        return lambda _row: True
    clauses = []
    for part in re.split(r"\s+AND\s+", text.strip(), flags=re.IGNORECASE):
        found = CLAUSE.match(part)
        if found is None:
            raise QueryError(f"cannot read the query clause {part!r}")
        clauses.append((found.group(1), found.group(2).replace("''", "'")))
    return lambda row: all(str(row.get(f) or "") == v for f, v in clauses)
