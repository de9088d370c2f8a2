"""The slice of OData 4.0 query language the Dataverse emulator understands:
``$select``, ``$filter`` (``eq ne gt ge lt le``, ``and``, ``or``, ``not``,
parentheses; string, number, GUID, date-time, ``true``/``false``/``null``
literals), ``$orderby`` (several keys, ``asc``/``desc``), alternate-key and
primary-key segments (``accounts(accountnumber='A-1')``,
``accounts(00000000-...)``) and the opaque paging tokens the emulator hands
out in ``@odata.nextLink``."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

Row = Mapping[str, Any]
Predicate = Callable[[Row], bool]

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                  r"[0-9a-fA-F]{12}$")
_TOKEN = re.compile(r"\s*(\(|\)|'(?:[^']|'')*'|[^\s()]+)")
_DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)$")
_OPS = {"eq", "ne", "gt", "ge", "lt", "le"}


class ODataError(ValueError):
    """A query the emulator (like Dataverse) refuses: answered 400."""


def _literal(text: str) -> Any:
    if text.startswith("'") and text.endswith("'") and len(text) >= 2:
        return text[1:-1].replace("''", "'")
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "null":
        return None
    if GUID.match(text):
        return text.lower()
    if _DATETIME.match(text):
        return normal_datetime(text)
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise ODataError(f"Syntax error: character '{text}' is not valid in $filter") from None


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


def _compare(left: Any, op: str, right: Any) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        if GUID.match(left):
            left = left.lower()
        if _DATETIME.match(left):
            left = normal_datetime(left)
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
        if op not in _OPS:
            raise ODataError(f"Syntax error: operator '{op}' is not supported in $filter")
        value = _literal(self.take())
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
    """``modifiedon asc,opportunityid desc`` as (column, descending) pairs."""
    terms = []
    for part in (text or "").split(","):
        bits = part.split()
        if not bits:
            continue
        if len(bits) > 2 or (len(bits) == 2 and bits[1].lower() not in ("asc", "desc")):
            raise ODataError(f"Syntax error in $orderby: '{part.strip()}'")
        terms.append((bits[0], len(bits) == 2 and bits[1].lower() == "desc"))
    return terms


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


def select(row: Row, columns: Sequence[str] | None) -> dict[str, Any]:
    if not columns:
        return dict(row)
    return {c: row.get(c) for c in columns}


def parse_key(segment: str) -> tuple[str, dict[str, Any] | str | None]:
    """``accounts(accountnumber='A-1',bb_region=3)`` → (``accounts``,
    {column: value}); ``accounts(<guid>)`` → (``accounts``, guid);
    ``accounts`` → (``accounts``, None)."""
    name, paren, rest = segment.partition("(")
    if not paren:
        return segment, None
    if not rest.endswith(")"):
        raise ODataError(f"Bad key segment '{segment}'")
    inner = rest[:-1]
    if GUID.match(inner):
        return name, inner.lower()
    values: dict[str, Any] = {}
    for part in re.findall(r"(\w+)\s*=\s*('(?:[^']|'')*'|[^,]+)", inner):
        values[part[0]] = _literal(part[1].strip())
    if not values:
        raise ODataError(f"Bad key segment '{segment}'")
    return name, values


def encode_token(state: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, sort_keys=True).encode()).decode()


def decode_token(token: str) -> dict[str, Any]:
    try:
        state = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, TypeError):
        raise ODataError("The $skiptoken is not valid") from None
    if not isinstance(state, dict):
        raise ODataError("The $skiptoken is not valid")
    return state
