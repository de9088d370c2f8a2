"""QuickBooks Online's query language as the emulator reads it: a parser and
an evaluator. The client's side of the grammar (quoting, the MAXRESULTS
ceiling) is in ``client.py``, which this module shares.

``SELECT * | COUNT(*) FROM Entity [WHERE cond AND cond ...]
[ORDERBY field [ASC|DESC]] [STARTPOSITION n] [MAXRESULTS n]``: conditions
compare one field with ``= < > <= >= IN LIKE`` (no OR, no joins, ``%`` the
only wildcard); strings are single-quoted with ``\\'`` escapes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from billbridge.connectors.quickbooks.client import MAX_RESULTS

DEFAULT_RESULTS = 100


class QueryError(ValueError):
    """A statement QuickBooks would refuse; the message is its detail text."""


@dataclass(frozen=True, slots=True)
class Condition:
    field: str
    op: str
    value: Any  # str, Decimal, bool, or a tuple of those for IN


@dataclass(frozen=True, slots=True)
class Query:
    entity: str
    count: bool = False
    where: tuple[Condition, ...] = ()
    order_by: tuple[tuple[str, bool], ...] = ()  # (field, descending)
    start: int = 1
    max_results: int = DEFAULT_RESULTS

    def filters(self, name: str) -> bool:
        return any(c.field.lower() == name.lower() for c in self.where)


_TOKEN = re.compile(r"""\s*(?:
    (?P<string>'(?:\\.|[^'\\])*')
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),*])
  | (?P<word>[A-Za-z_][\w.]*)
)""", re.VERBOSE)


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    text = text.strip().rstrip(";")
    while position < len(text):
        found = _TOKEN.match(text, position)
        if found is None or found.end() == position:
            raise QueryError(f"QueryParserError: Encountered \"{text[position:position + 20]}\" "
                             f"at column {position + 1}")
        kind = found.lastgroup or ""
        tokens.append((kind, found.group(kind)))
        position = found.end()
    return tokens


class _Reader:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.index = 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.index] if self.index < len(self.tokens) else ("end", "")

    def take(self) -> tuple[str, str]:
        token = self.peek()
        self.index += 1
        return token

    def keyword(self, *words: str) -> bool:
        kind, text = self.peek()
        if kind == "word" and text.lower() in words:
            self.index += 1
            return True
        return False

    def expect(self, what: str, *kinds: str) -> str:
        kind, text = self.take()
        if kind not in kinds:
            raise QueryError(f"QueryParserError: expected {what}, found \"{text or 'end'}\"")
        return text


def _literal(kind: str, text: str) -> Any:
    if kind == "string":
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    if kind == "number":
        return Decimal(text)
    if kind == "word" and text.lower() in ("true", "false"):
        return text.lower() == "true"
    raise QueryError(f"QueryParserError: expected a value, found \"{text}\"")


def parse(statement: str) -> Query:
    reader = _Reader(_tokens(statement))
    if not reader.keyword("select"):
        raise QueryError("QueryParserError: a query starts with SELECT")
    count = False
    if reader.keyword("count"):
        for expected in ("(", "*", ")"):
            if reader.expect(expected, "punct") != expected:
                raise QueryError("QueryParserError: expected COUNT(*)")
        count = True
    else:  # a projection ("*, Sku"): QuickBooks returns whole records all the same
        while True:
            reader.expect("a field or *", "punct", "word")
            if reader.peek() != ("punct", ","):
                break
            reader.take()
    if not reader.keyword("from"):
        raise QueryError("QueryParserError: expected FROM")
    entity = reader.expect("an entity", "word")
    where: list[Condition] = []
    if reader.keyword("where"):
        while True:
            where.append(_condition(reader))
            if reader.keyword("or"):
                raise QueryError("QueryParserError: OR is not supported")
            if not reader.keyword("and"):
                break
    order: list[tuple[str, bool]] = []
    start, limit = 1, DEFAULT_RESULTS
    while reader.peek()[0] != "end":
        if reader.keyword("orderby") or (reader.keyword("order") and reader.keyword("by")):
            while True:
                name = reader.expect("a field", "word")
                descending = reader.keyword("desc")
                if not descending:
                    reader.keyword("asc")
                order.append((name, descending))
                if reader.peek() != ("punct", ","):
                    break
                reader.take()
        elif reader.keyword("startposition"):
            start = max(1, int(reader.expect("a number", "number")))
        elif reader.keyword("maxresults"):
            limit = min(MAX_RESULTS, max(1, int(reader.expect("a number", "number"))))
        else:
            raise QueryError(f"QueryParserError: Encountered \"{reader.peek()[1]}\"")
    return Query(entity, count, tuple(where), tuple(order), start, limit)


def _condition(reader: _Reader) -> Condition:
    name = reader.expect("a field", "word")
    kind, text = reader.take()
    if kind == "op":
        op = {"<>": "!="}.get(text, text)
        return Condition(name, op, _literal(*reader.take()))
    if kind == "word" and text.lower() == "like":
        value = _literal(*reader.take())
        if not isinstance(value, str):
            raise QueryError("QueryParserError: LIKE takes a string")
        return Condition(name, "like", value)
    if kind == "word" and text.lower() == "in":
        if reader.expect("(", "punct") != "(":
            raise QueryError("QueryParserError: IN takes a list in brackets")
        values = []
        while True:
            values.append(_literal(*reader.take()))
            punct = reader.expect(", or )", "punct")
            if punct == ")":
                break
        return Condition(name, "in", tuple(values))
    raise QueryError(f"QueryParserError: expected an operator after {name}, found \"{text}\"")


# -- evaluation (the emulator's side) ---------------------------------------------
def field_value(record: Mapping[str, Any], path: str) -> Any:
    """``MetaData.LastUpdatedTime`` walks into objects; a reference
    (``CustomerRef``) compares by its ``value``."""
    current: Any = record
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
    if isinstance(current, Mapping) and "value" in current:
        return current["value"]
    return current


def _comparable(stored: Any, literal: Any) -> tuple[Any, Any]:
    """Both sides in one type: numbers as Decimal, timestamps as datetimes,
    dates as dates, anything else as text."""
    if isinstance(literal, bool) or isinstance(stored, bool):
        return stored, literal
    if isinstance(literal, Decimal) or isinstance(stored, (int, Decimal)):
        try:
            return Decimal(str(stored)), Decimal(str(literal))
        except InvalidOperation:
            return str(stored), str(literal)
    text, wanted = str(stored), str(literal)
    if "T" in text and "T" in wanted:
        try:
            return datetime.fromisoformat(text), datetime.fromisoformat(wanted)
        except ValueError:
            pass
    try:
        return date.fromisoformat(text[:10]), date.fromisoformat(wanted[:10])
    except ValueError:
        return text.lower(), wanted.lower()


def matches(record: Mapping[str, Any], condition: Condition) -> bool:
    stored = field_value(record, condition.field)
    if stored is None:
        return False
    if condition.op == "in":
        return any(_equal(stored, v) for v in condition.value)
    if condition.op == "like":
        pattern = "^" + ".*".join(re.escape(p) for p in str(condition.value).split("%")) + "$"
        return re.match(pattern, str(stored), re.IGNORECASE) is not None
    left, right = _comparable(stored, condition.value)
    try:
        return bool({"=": left == right, "!=": left != right, "<": left < right,
                     ">": left > right, "<=": left <= right, ">=": left >= right}[condition.op])
    except TypeError:  # an aware and a naive timestamp, say
        return False


def _equal(stored: Any, literal: Any) -> bool:
    left, right = _comparable(stored, literal)
    return bool(left == right)


def run(query: Query, records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The records a query selects, ordered and paged (1-based STARTPOSITION)."""
    chosen = [r for r in records if all(matches(r, c) for c in query.where)]
    for name, descending in reversed(query.order_by):
        chosen.sort(key=lambda record: _sort_key(field_value(record, name)),
                    reverse=descending)
    return chosen[query.start - 1: query.start - 1 + query.max_results]


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, "")
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return (1, Decimal(str(value)))
    text = str(value)
    if "T" in text:
        try:
            return (2, datetime.fromisoformat(text).timestamp())
        except ValueError:
            pass
    return (3, text)
