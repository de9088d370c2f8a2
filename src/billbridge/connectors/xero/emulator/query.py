"""Xero's ``where`` filter as the emulator reads it: ``Field == "x"``,
``Field == Guid("…")``, ``Field.Contains("x")`` (``StartsWith``, ``EndsWith``),
``!=``, ``<``, ``>``…, joined by ``AND``/``OR`` (or ``&&``/``||``) with
parentheses. Strings compare without case, as Xero's do."""

from __future__ import annotations

import operator as op
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

_TOKEN = re.compile(r"""\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<op>==|!=|>=|<=|&&|\|\||[<>().,])
                    |(?P<num>-?\d+(?:\.\d+)?)|(?P<word>[A-Za-z_][A-Za-z0-9_]*))""", re.X)


_ORDERINGS: dict[str, Callable[[Any, Any], bool]] = {">": op.gt, "<": op.lt, ">=": op.ge,
                                                    "<=": op.le}


class WhereError(ValueError):
    pass


def where(expression: str) -> Callable[[Mapping[str, Any]], bool]:
    """A predicate over a stored record; ``WhereError`` says what it cannot read."""
    tokens: list[tuple[str, str]] = []
    position = 0
    text = expression.strip()
    while position < len(text):
        found = _TOKEN.match(text, position)
        if not found or found.end() == position:
            raise WhereError(f"cannot parse the where filter at {text[position:]!r}")
        position = found.end()
        kind = found.lastgroup or ""
        value = found.group(kind)
        tokens.append((kind, re.sub(r"\\(.)", r"\1", value[1:-1]) if kind == "str" else value))
    parser = _Where(tokens)
    predicate = parser.any_of()
    if parser.index != len(tokens):
        raise WhereError(f"unexpected {tokens[parser.index][1]!r} in the where filter")
    return predicate


class _Where:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.index = 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.index] if self.index < len(self.tokens) else ("", "")

    def take(self, value: str | None = None) -> str:
        kind, text = self.peek()
        if not kind or (value is not None and text != value):
            raise WhereError(f"expected {value or 'more'} in the where filter, got {text!r}")
        self.index += 1
        return text

    def joined(self, words: tuple[str, ...]) -> bool:
        if self.peek()[1].upper() in words:
            self.index += 1
            return True
        return False

    def any_of(self) -> Callable[[Mapping[str, Any]], bool]:
        terms = [self.all_of()]
        while self.joined(("OR", "||")):
            terms.append(self.all_of())
        return lambda row: any(t(row) for t in terms)

    def all_of(self) -> Callable[[Mapping[str, Any]], bool]:
        terms = [self.term()]
        while self.joined(("AND", "&&")):
            terms.append(self.term())
        return lambda row: all(t(row) for t in terms)

    def term(self) -> Callable[[Mapping[str, Any]], bool]:
        if self.peek()[1] == "(":
            self.take("(")
            inner = self.any_of()
            self.take(")")
            return inner
        path = [self.take()]
        while self.peek()[1] == ".":
            self.take(".")
            path.append(self.take())
        if self.peek()[1] == "(":
            method = path.pop().lower()
            self.take("(")
            needle = str(self.value()).casefold()
            self.take(")")
            tests = {"contains": str.__contains__, "startswith": str.startswith,
                     "endswith": str.endswith}
            if method not in tests:
                raise WhereError(f"unknown where method {method}")
            test = tests[method]
            return lambda row: test(str(_field(row, path) or "").casefold(), needle)
        operator = self.take()
        wanted = self.value()
        return lambda row: _compare(_field(row, path), operator, wanted)

    def value(self) -> Any:
        kind, text = self.peek()
        self.index += 1
        if kind == "str":
            return text
        if kind == "num":
            return Decimal(text)
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        if text.lower() == "null":
            return None
        if text.lower() == "guid":
            self.take("(")
            guid = self.take()
            self.take(")")
            return guid
        raise WhereError(f"unexpected {text!r} in the where filter")


def _field(row: Mapping[str, Any], path: list[str]) -> Any:
    value: Any = row
    for name in path:
        value = value.get(name) if isinstance(value, Mapping) else None
    return value


def _compare(actual: Any, operator: str, wanted: Any) -> bool:
    if isinstance(wanted, str) or isinstance(actual, str):
        left, right = str(actual or "").casefold(), str(wanted or "").casefold()
    else:
        left, right = actual, wanted
    if operator == "==":
        return bool(left == right)
    if operator == "!=":
        return bool(left != right)
    if operator not in _ORDERINGS:
        raise WhereError(f"unknown operator {operator}")
    if left is None or right is None:
        return False
    try:
        return bool(_ORDERINGS[operator](left, right))
    except TypeError:
        raise WhereError(f"cannot compare {actual!r} {operator} {wanted!r}") from None
