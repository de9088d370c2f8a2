"""The slice of OData 4.0 the Finance emulator understands, as Finance's
``/data`` documents it: ``$filter`` with ``eq ne gt ge lt le``, ``and``,
``or``, ``not`` and parentheses (``has`` and ``in`` refused), wildcards in
string ``eq`` (``Text eq '*[bb:…]*'``), enum literals
(``Microsoft.Dynamics.DataEntities.NoYes'Yes'``), date-times, numbers;
``$orderby``; ``$select``; and key segments naming every key field
(``CustomersV3(dataAreaId='usmf',CustomerAccount='US-001')``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

Row = Mapping[str, Any]
Predicate = Callable[[Row], bool]

_TOKEN = re.compile(r"\s*(\(|\)|[\w.]+'(?:[^']|'')*'|'(?:[^']|'')*'|[^\s()]+)")
_ENUM = re.compile(r"^Microsoft\.Dynamics\.DataEntities\.(\w+)'(\w+)'$")
_DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)$")
_OPS = {"eq", "ne", "gt", "ge", "lt", "le"}


class ODataError(ValueError):
    """A query Finance refuses: answered 400."""


class Wildcard(str):
    """A string literal with ``*`` in it, which ``eq`` matches as a pattern."""

    def matches(self, value: Any) -> bool:
        pattern = ".*".join(re.escape(part) for part in self.split("*"))
        return isinstance(value, str) and re.fullmatch(pattern, value, re.DOTALL) is not None


def normal_datetime(text: str) -> str:
    """One spelling for comparisons: ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    core = text.replace("+00:00", "Z").rstrip("Z")
    whole, _, fraction = core.partition(".")
    if len(whole) == 16:
        whole += ":00"
    return f"{whole}.{(fraction + '000000')[:6]}Z"


def literal(text: str) -> Any:
    if text.startswith("'") and text.endswith("'") and len(text) >= 2:
        value = text[1:-1].replace("''", "'")
        return Wildcard(value) if "*" in value else value
    enum = _ENUM.match(text)
    if enum:
        return enum.group(2)
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "null":
        return None
    if _DATETIME.match(text):
        return normal_datetime(text)
    try:
        return Decimal(text)
    except InvalidOperation:
        raise ODataError(f"Syntax error: '{text}' is not a valid literal in $filter") from None


def _comparable(value: Any) -> Any:
    if isinstance(value, str) and _DATETIME.match(value):
        return normal_datetime(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Decimal(str(value))
    return value


def _compare(left: Any, op: str, right: Any) -> bool:
    left = _comparable(left)
    if isinstance(right, Wildcard) and op in ("eq", "ne"):
        return right.matches(left) == (op == "eq")
    if op == "eq":
        return bool(left == right)
    if op == "ne":
        return bool(left != right)
    if left is None or right is None:
        return False
    try:
        return bool({"gt": left > right, "ge": left >= right, "lt": left < right,
                     "le": left <= right}[op])
    except TypeError:
        return False


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = [t for t in _TOKEN.findall(text) if t]
        self.at = 0

    def peek(self) -> str | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise ODataError("Syntax error: the $filter ends too early")
        self.at += 1
        return token

    def expression(self) -> Predicate:
        left = self.conjunction()
        while (self.peek() or "").lower() == "or":
            self.take()
            right = self.conjunction()
            left = (lambda a, b: lambda row: a(row) or b(row))(left, right)
        return left

    def conjunction(self) -> Predicate:
        left = self.factor()
        while (self.peek() or "").lower() == "and":
            self.take()
            right = self.factor()
            left = (lambda a, b: lambda row: a(row) and b(row))(left, right)
        return left

    def factor(self) -> Predicate:
        token = self.take()
        if token.lower() == "not":
            inner = self.factor()
            return lambda row: not inner(row)
        if token == "(":
            inner = self.expression()
            if self.take() != ")":
                raise ODataError("Syntax error: ')' expected in $filter")
            return inner
        name, op = token, self.take().lower()
        if op in ("has", "in"):
            raise ODataError(f"The query operator '{op}' is not supported")
        if op not in _OPS:
            raise ODataError(f"Syntax error: operator '{op}' is not supported in $filter")
        value = literal(self.take())
        return lambda row: _compare(row.get(name), op, value)


def parse_filter(text: str | None) -> Predicate:
    if not text or not text.strip():
        return lambda _row: True
    parser = _Parser(text)
    predicate = parser.expression()
    if parser.peek() is not None:
        raise ODataError(f"Syntax error at '{parser.peek()}' in $filter")
    return predicate


def parse_orderby(text: str | None) -> list[tuple[str, bool]]:
    terms = []
    for part in (text or "").split(","):
        bits = part.split()
        if not bits:
            continue
        if len(bits) > 2 or (len(bits) == 2 and bits[1].lower() not in ("asc", "desc")):
            raise ODataError(f"Syntax error in $orderby: '{part.strip()}'")
        terms.append((bits[0], len(bits) == 2 and bits[1].lower() == "desc"))
    return terms


def ordered(rows: list[dict[str, Any]], terms: Sequence[tuple[str, bool]]
            ) -> list[dict[str, Any]]:
    def position(name: str) -> Callable[[Row], tuple[bool, Any]]:
        def key(row: Row) -> tuple[bool, Any]:
            value = row.get(name)
            return (value is not None, "" if value is None else _comparable(value))
        return key

    for name, desc in reversed(terms):
        rows = sorted(rows, key=position(name), reverse=desc)
    return rows


def parse_key(segment: str) -> tuple[str, dict[str, Any] | None]:
    """``CustomersV3(dataAreaId='usmf',CustomerAccount='US-001')`` →
    (``CustomersV3``, {field: value}); ``CustomersV3`` → (``CustomersV3``, None)."""
    name, paren, rest = segment.partition("(")
    if not paren:
        return segment, None
    if not rest.endswith(")"):
        raise ODataError(f"Bad key segment '{segment}'")
    values: dict[str, Any] = {}
    for field, value in re.findall(r"(\w+)\s*=\s*('(?:[^']|'')*'|[^,]+)", rest[:-1]):
        parsed = literal(value.strip())
        values[field] = str(parsed) if isinstance(parsed, Wildcard) else parsed
    if not values:
        raise ODataError(f"Bad key segment '{segment}'")
    return name, values
