"""The emulator's SuiteQL: a small, honest parser for the query shapes the
connector sends, not a SQL engine.

Understood: ``SELECT col[, …] FROM table [WHERE cond [AND cond …]]
[ORDER BY col[, …]]`` where a column is a name, ``name AS alias`` or
``TO_CHAR(name, 'fmt') [AS alias]``, and a condition is ``name op value``
(``=``, ``!=``, ``<>``, ``<``, ``<=``, ``>``, ``>=``), ``name IN (value,
…)`` or ``name LIKE 'pattern'`` (``%`` and ``_`` wildcards, case-sensitive,
as in Oracle); a value is a 'string', a number, ``TO_TIMESTAMP('…', 'fmt')`` or
``TO_DATE('…', 'fmt')``, with the formats ``YYYY-MM-DD HH24:MI:SS`` and
``YYYY-MM-DD``. Anything else is refused with NetSuite's search error.
Values come back as SuiteQL gives them: strings, booleans as ``T``/``F``,
datetimes in the user's date format (``M/D/YYYY``) unless ``TO_CHAR`` says
otherwise, and NULL columns left out of the row.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

FORMATS = {"YYYY-MM-DD HH24:MI:SS": "%Y-%m-%d %H:%M:%S", "YYYY-MM-DD": "%Y-%m-%d"}

_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)"
                    r"|(?P<op><=|>=|<>|!=|=|<|>)|(?P<punct>[(),*])|(?P<word>[A-Za-z_][\w.]*))")
_KEYWORDS = frozenset({"select", "from", "where", "and", "order", "by", "in", "as", "asc",
                       "desc", "like"})


class SuiteQLError(ValueError):
    """A query the emulator (like NetSuite) will not run; the message is the detail."""


@dataclass(frozen=True)
class Column:
    name: str
    alias: str
    fmt: str | None = None  # TO_CHAR format


@dataclass(frozen=True)
class Condition:
    name: str
    op: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Query:
    table: str
    columns: tuple[Column, ...]
    conditions: tuple[Condition, ...]
    order: tuple[tuple[str, bool], ...]  # (column, descending)


def _refuse(reason: str) -> SuiteQLError:
    return SuiteQLError("Invalid search query. Detailed unprocessed description follows. "
                        f"Search error occurred: {reason}")


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        position = 0
        text = text.strip().rstrip(";")
        while position < len(text):
            found = _TOKEN.match(text, position)
            if not found or found.end() == position:
                raise _refuse(f"unexpected text at {text[position:position + 20]!r}")
            kind = found.lastgroup or ""
            self.tokens.append((kind, found.group(kind)))
            position = found.end()
            while position < len(text) and text[position].isspace():
                position += 1
        self.at = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def word(self, *expected: str) -> str:
        token = self.peek()
        if token is None or token[0] != "word" or (expected and token[1].lower() not in expected):
            raise _refuse(f"expected {' or '.join(expected) or 'a name'}, got "
                          f"{token[1] if token else 'the end'}")
        self.at += 1
        return token[1].lower()

    def punct(self, symbol: str) -> None:
        token = self.peek()
        if token != ("punct", symbol):
            raise _refuse(f"expected {symbol!r}, got {token[1] if token else 'the end'}")
        self.at += 1

    def accept(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token[0] == "word" and token[1].lower() == word:
            self.at += 1
            return True
        return False

    def string(self) -> str:
        token = self.peek()
        if token is None or token[0] != "str":
            raise _refuse(f"expected a quoted string, got {token[1] if token else 'the end'}")
        self.at += 1
        return token[1][1:-1].replace("''", "'")

    def name(self) -> str:
        name = self.word()
        if name in _KEYWORDS:
            raise _refuse(f"unexpected keyword {name.upper()}")
        return name

    def column(self) -> Column:
        name = self.name()
        fmt = None
        if name == "to_char":
            self.punct("(")
            name = self.name()
            self.punct(",")
            fmt = self.string()
            self.punct(")")
            if fmt not in FORMATS:
                raise _refuse(f"unsupported TO_CHAR format {fmt!r}")
        alias = self.name() if self.accept("as") else name
        return Column(name, alias, fmt)

    def value(self) -> Any:
        token = self.peek()
        if token is None:
            raise _refuse("a condition ends without a value")
        if token[0] == "str":
            return self.string()
        if token[0] == "num":
            self.at += 1
            return Decimal(token[1])
        function = self.word("to_timestamp", "to_date")
        self.punct("(")
        text = self.string()
        self.punct(",")
        fmt = self.string()
        self.punct(")")
        if fmt not in FORMATS:
            raise _refuse(f"unsupported {function.upper()} format {fmt!r}")
        try:
            moment = datetime.strptime(text, FORMATS[fmt])
        except ValueError:
            raise _refuse(f"{text!r} does not match {fmt!r}") from None
        return moment if function == "to_timestamp" else moment.date()

    def condition(self) -> Condition:
        name = self.name()
        if self.accept("in"):
            self.punct("(")
            values = [self.value()]
            while self.peek() == ("punct", ","):
                self.at += 1
                values.append(self.value())
            self.punct(")")
            return Condition(name, "in", tuple(values))
        if self.accept("like"):
            return Condition(name, "like", (self.string(),))
        token = self.peek()
        if token is None or token[0] != "op":
            raise _refuse(f"expected an operator after {name}")
        self.at += 1
        return Condition(name, "!=" if token[1] == "<>" else token[1], (self.value(),))

    def query(self) -> Query:
        self.word("select")
        columns = [self.column()]
        while self.peek() == ("punct", ","):
            self.at += 1
            columns.append(self.column())
        self.word("from")
        table = self.name()
        conditions: list[Condition] = []
        if self.accept("where"):
            conditions.append(self.condition())
            while self.accept("and"):
                conditions.append(self.condition())
        order: list[tuple[str, bool]] = []
        if self.accept("order"):
            self.word("by")
            while True:
                column = self.name()
                descending = self.accept("desc")
                if not descending:
                    self.accept("asc")
                order.append((column, descending))
                if self.peek() != ("punct", ","):
                    break
                self.at += 1
        if self.peek() is not None:
            raise _refuse(f"unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return Query(table, tuple(columns), tuple(conditions), tuple(order))


def parse(text: str) -> Query:
    return _Parser(text).query()


def _comparable(actual: Any, wanted: Any) -> tuple[Any, Any]:
    if isinstance(wanted, Decimal) and not isinstance(actual, Decimal) and actual is not None:
        try:
            return Decimal(str(actual)), wanted
        except InvalidOperation:
            return str(actual), str(wanted)
    if isinstance(wanted, date) and not isinstance(wanted, datetime) \
            and isinstance(actual, datetime):
        return actual.date(), wanted
    if isinstance(actual, bool):
        return ("T" if actual else "F"), wanted
    return actual, wanted


def _holds(row: Mapping[str, Any], condition: Condition) -> bool:
    actual = row.get(condition.name)
    if condition.op == "in":
        return any(a == w for a, w in (_comparable(actual, v) for v in condition.values))
    if condition.op == "like":
        return isinstance(actual, str) and _like(condition.values[0]).fullmatch(actual) is not None
    left, right = _comparable(actual, condition.values[0])
    if condition.op == "=":
        return bool(left == right)
    if condition.op == "!=":
        return bool(left != right)
    if left is None:
        return False
    try:
        return bool({"<": left < right, "<=": left <= right, ">": left > right,
                     ">=": left >= right}[condition.op])
    except TypeError:
        raise _refuse(f"cannot compare {condition.name} with {right!r}") from None


@functools.lru_cache(maxsize=64)
def _like(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "%" else "." if c == "_" else re.escape(c)
                              for c in pattern), re.DOTALL)


def render(value: Any, fmt: str | None) -> Any:
    """A stored value as SuiteQL answers it."""
    if isinstance(value, datetime | date):
        if fmt is not None:
            return value.strftime(FORMATS[fmt])
        return f"{value.month}/{value.day}/{value.year}"
    if isinstance(value, bool):
        return "T" if value else "F"
    return str(value)


def run(query: Query, tables: Mapping[str, Callable[[], Iterable[Mapping[str, Any]]]]
        ) -> list[dict[str, Any]]:
    """Rows of ``query`` over ``tables`` (table → rows keyed by lower-case column)."""
    if query.table not in tables:
        raise _refuse(f"Record '{query.table}' was not found.")
    rows = list(tables[query.table]())
    known = set().union(*(r.keys() for r in rows)) if rows else set()
    for name in [c.name for c in query.columns] + [c.name for c in query.conditions] + \
            [o[0] for o in query.order]:
        if rows and name not in known and name != "*":
            raise _refuse(f"Field '{name}' for record '{query.table}' was not found. Reason: "
                          "NOT_EXPOSED - Not available for channel SEARCH")
    rows = [r for r in rows if all(_holds(r, c) for c in query.conditions)]
    for name, descending in reversed(query.order):
        rows.sort(key=functools.partial(_order_key, name), reverse=descending)
    out = []
    for row in rows:
        item: dict[str, Any] = {"links": []}
        for column in query.columns:
            value = row.get(column.name)
            if value is not None:
                item[column.alias] = render(value, column.fmt)
        out.append(item)
    return out


def _order_key(name: str, row: Mapping[str, Any]) -> tuple[bool, Any]:
    value = row.get(name)
    return value is None, _sort_key(value)


def _sort_key(value: Any) -> Any:
    if isinstance(value, str) and value.isdigit():
        return (0, int(value), "")
    if isinstance(value, Decimal):
        return (0, value, "")
    return (1, 0, str(value))
