"""The query parameters of Fusion's REST framework as the emulator reads them:
``q`` as a rowmatch expression (framework version 2 and later: ``Field =
'value' and (Other > 3 or Other is null)``; ``LIKE`` with ``*`` or ``%``
wildcards), and ``orderBy=Field:asc,Other:desc``. Strings compare as
strings (date-times are stored in one spelling, so that is their order),
numbers as ``Decimal``."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

Row = Mapping[str, Any]
Predicate = Callable[[Row], bool]

_TOKEN = re.compile(r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<op><>|!=|>=|<=|=|>|<)"
                    r"|(?P<paren>[()])|(?P<word>[A-Za-z_][\w.]*)|(?P<number>-?\d+(?:\.\d+)?))")
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<>": lambda a, b: a != b,
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b}


class QueryError(ValueError):
    """A ``q`` or ``orderBy`` Fusion would answer 400 to."""


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    at = 0
    text = text.rstrip()
    while at < len(text):
        found = _TOKEN.match(text, at)
        if found is None or found.end() == at:
            raise QueryError(f"The query expression is not valid near {text[at:at + 20]!r}.")
        kind = found.lastgroup or ""
        out.append((kind, found.group(kind)))
        at = found.end()
    return out


def _value(kind: str, text: str) -> Any:
    if kind == "string":
        return text[1:-1].replace("''", "'")
    try:
        return Decimal(text)
    except InvalidOperation:
        raise QueryError(f"{text!r} is not a value") from None


def _comparable(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return Decimal(str(value))
    return value


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.at = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise QueryError("The query expression ends too early.")
        self.at += 1
        return token

    def word(self, *words: str) -> bool:
        token = self.peek()
        if token is not None and token[0] == "word" and token[1].lower() in words:
            self.at += 1
            return True
        return False

    def expression(self) -> Predicate:
        terms = [self.conjunction()]
        while self.word("or"):
            terms.append(self.conjunction())
        return terms[0] if len(terms) == 1 else lambda row: any(t(row) for t in terms)

    def conjunction(self) -> Predicate:
        terms = [self.term()]
        while self.word("and"):
            terms.append(self.term())
        return terms[0] if len(terms) == 1 else lambda row: all(t(row) for t in terms)

    def term(self) -> Predicate:
        kind, text = self.take()
        if (kind, text) == ("paren", "("):
            inner = self.expression()
            if self.take() != ("paren", ")"):
                raise QueryError("A parenthesis is not closed.")
            return inner
        if kind != "word":
            raise QueryError(f"An attribute name was expected, not {text!r}.")
        name = text
        if self.word("is"):
            negated = self.word("not")
            if not self.word("null"):
                raise QueryError(f"{name} is … needs null")
            return lambda row: (row.get(name) is None) != negated
        if self.word("like"):
            vkind, vtext = self.take()
            pattern = re.compile("^" + re.escape(str(_value(vkind, vtext)))
                                 .replace(r"\*", ".*").replace("%", ".*") + "$", re.IGNORECASE)
            return lambda row: row.get(name) is not None and bool(pattern.match(str(row[name])))
        okind, op = self.take()
        if okind != "op":
            raise QueryError(f"An operator was expected after {name}, not {op!r}.")
        vkind, vtext = self.take()
        if vkind not in ("string", "number"):
            raise QueryError(f"A value was expected after {name} {op}, not {vtext!r}.")
        wanted, compare = _value(vkind, vtext), _COMPARE[op]

        def check(row: Row) -> bool:
            have = _comparable(row.get(name))
            if have is None:
                return False
            try:
                if isinstance(wanted, Decimal) and not isinstance(have, Decimal):
                    have = Decimal(str(have))
                elif isinstance(wanted, str):
                    have = str(have)
                return bool(compare(have, wanted))
            except (InvalidOperation, TypeError):
                return False
        return check


def parse_q(text: str | None) -> Predicate:
    if not text or not text.strip():
        return lambda _row: True
    parser = _Parser(text)
    predicate = parser.expression()
    left = parser.peek()
    if left is not None:
        raise QueryError(f"The query expression is not valid near {left[1]!r}.")
    return predicate


def ordered(rows: Sequence[Row], order_by: str | None, default: Sequence[str]) -> list[Row]:
    """``orderBy=LastUpdateDate:asc,CustomerTransactionId:asc``."""
    keys: list[tuple[str, bool]] = []
    for item in (order_by or "").split(","):
        if not item.strip():
            continue
        name, _, direction = item.strip().partition(":")
        if direction.lower() not in ("", "asc", "desc"):
            raise QueryError(f"The orderBy direction of {name} must be asc or desc.")
        keys.append((name, direction.lower() == "desc"))
    out = list(rows)
    for name, descending in reversed(keys or [(k, False) for k in default]):
        out.sort(key=lambda r, n=name: (r.get(n) is None, _comparable(r.get(n))  # type: ignore[misc]
                                        if r.get(n) is not None else 0), reverse=descending)
    return out
