"""The server side of OData 4.0 that the Microsoft emulators share (Dataverse
for Dynamics 365 Sales, the ``/data`` entities of Dynamics 365 Finance):
``$filter`` (``eq ne gt ge lt le``, ``and``, ``or``, ``not``, parentheses),
``$orderby``, ``$select``, key segments, ``Prefer: odata.maxpagesize``,
``@odata.nextLink`` pages with opaque tokens, and ``$batch`` bodies read and
answered. What differs by service (which literals it knows, how it compares
a column, which operators it refuses) is a ``Dialect`` its emulator gives."""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from billbridge.connectors.odata import headed, http_part

Row = Mapping[str, Any]
Predicate = Callable[[Row], bool]

DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)$")
_TOKEN = re.compile(r"\s*(\(|\)|[\w.]+'(?:[^']|'')*'|'(?:[^']|'')*'|[^\s()]+)")
_OPS = {"eq", "ne", "gt", "ge", "lt", "le"}


class ODataError(ValueError):
    """A query the service refuses: answered 400."""


class Wildcard(str):
    """A string literal with ``*`` in it, which ``eq`` matches as a pattern."""

    def matches(self, value: Any) -> bool:
        pattern = ".*".join(re.escape(part) for part in self.split("*"))
        return isinstance(value, str) and re.fullmatch(pattern, value, re.DOTALL) is not None


@dataclass(frozen=True)
class Dialect:
    """One service's reading of ``$filter``: ``words`` are its own literals
    (a pattern and the value of a match, tried in order, e.g. GUIDs, enums,
    date-times), ``number`` reads a numeral, ``comparable`` turns a column's
    value into what a literal compares with, ``wildcards`` makes ``*`` in a
    string a pattern for ``eq``, ``refused`` are operators it names as not
    supported, and ``bad_literal`` is its message for a literal it cannot read."""

    number: Callable[[str], Any]
    words: Sequence[tuple[re.Pattern[str], Callable[[re.Match[str]], Any]]] = ()
    comparable: Callable[[Any], Any] = lambda value: value
    wildcards: bool = False
    refused: frozenset[str] = frozenset()
    bad_literal: str = "Syntax error: '{text}' is not a valid literal in $filter"

    def literal(self, text: str) -> Any:
        if text.startswith("'") and text.endswith("'") and len(text) >= 2:
            value = text[1:-1].replace("''", "'")
            return Wildcard(value) if self.wildcards and "*" in value else value
        lowered = text.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        if lowered == "null":
            return None
        for pattern, value_of in self.words:
            found = pattern.match(text)
            if found:
                return value_of(found)
        try:
            return self.number(text)
        except ValueError:
            raise ODataError(self.bad_literal.format(text=text)) from None

    def compare(self, left: Any, op: str, right: Any) -> bool:
        left = self.comparable(left)
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
    def __init__(self, text: str, dialect: Dialect) -> None:
        self.tokens = [t for t in _TOKEN.findall(text) if t]
        self.at = 0
        self.dialect = dialect

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
        if op in self.dialect.refused:
            raise ODataError(f"The query operator '{op}' is not supported")
        if op not in _OPS:
            raise ODataError(f"Syntax error: operator '{op}' is not supported in $filter")
        value = self.dialect.literal(self.take())
        compare = self.dialect.compare
        return lambda row: compare(row.get(name), op, value)


def parse_filter(text: str | None, dialect: Dialect) -> Predicate:
    if not text or not text.strip():
        return lambda _row: True
    parser = _Parser(text, dialect)
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


def parse_key(segment: str, dialect: Dialect) -> tuple[str, dict[str, Any] | None]:
    """``accounts(accountnumber='A-1',bb_region=3)`` → (``accounts``,
    {field: value}); ``accounts`` → (``accounts``, None)."""
    name, paren, rest = segment.partition("(")
    if not paren:
        return segment, None
    if not rest.endswith(")"):
        raise ODataError(f"Bad key segment '{segment}'")
    values: dict[str, Any] = {}
    for column, value in re.findall(r"(\w+)\s*=\s*('(?:[^']|'')*'|[^,]+)", rest[:-1]):
        parsed = dialect.literal(value.strip())
        values[column] = str(parsed) if isinstance(parsed, Wildcard) else parsed
    if not values:
        raise ODataError(f"Bad key segment '{segment}'")
    return name, values


def select(row: Row, columns: Sequence[str] | None) -> dict[str, Any]:
    """The row with only ``columns`` (every column when none are named)."""
    if not columns:
        return dict(row)
    return {c: row.get(c) for c in columns}


def selected(text: str | None) -> list[str]:
    """The columns a ``$select`` names."""
    return [c.strip() for c in (text or "").split(",") if c.strip()]


# -- pages -------------------------------------------------------------------------
def max_page_size(prefer: str, maximum: int) -> int | None:
    """The page size ``Prefer: odata.maxpagesize=N`` asks for, within 1 and
    ``maximum``; None when the header does not ask."""
    for item in prefer.split(","):
        name, _, value = item.strip().partition("=")
        if name == "odata.maxpagesize" and value.strip().isdigit():
            return max(1, min(maximum, int(value)))
    return None


def next_link(base: str, query: Mapping[str, Sequence[str]], *, drop: Sequence[str] = (),
              **changes: str) -> str:
    """``@odata.nextLink``: the request's own query (first values, without
    ``drop``) with ``changes`` laid over it."""
    keep = {k: v[0] for k, v in query.items() if k not in drop}
    return f"{base}?{urlencode({**keep, **changes})}"


def encode_token(state: Mapping[str, Any]) -> str:
    """An opaque ``$skiptoken``: the paging state, as base64 JSON."""
    return base64.urlsafe_b64encode(json.dumps(state, sort_keys=True).encode()).decode()


def decode_token(token: str) -> dict[str, Any]:
    try:
        state = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, TypeError):
        raise ODataError("The $skiptoken is not valid") from None
    if not isinstance(state, dict):
        raise ODataError("The $skiptoken is not valid")
    return state


# -- $batch ------------------------------------------------------------------------
_BOUNDARY = re.compile(r'boundary="?([^";,\s]+)"?', re.IGNORECASE)
_REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request",
            401: "Unauthorized", 404: "Not Found", 412: "Precondition Failed",
            429: "Too Many Requests", 500: "Internal Server Error"}


@dataclass
class InnerRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    content_id: str | None = None


@dataclass
class Part:
    """A top-level part: one request, or a change set of several."""

    requests: list[InnerRequest]
    changeset: bool


@dataclass
class InnerResponse:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_id: str | None = None


def boundary_of(content_type: str) -> str | None:
    found = _BOUNDARY.search(content_type or "")
    return found.group(1) if found else None


def _split(body: str, boundary: str) -> list[str]:
    chunks = re.split(rf"(?:^|\r?\n)--{re.escape(boundary)}(?:--)?[ \t]*(?=\r?\n|$)", body)
    return [c for c in chunks[1:] if c.strip() and c.strip() != "--"]


def parse_batch(body: bytes, content_type: str) -> list[Part]:
    """The parts of a ``$batch`` request body; ``ValueError`` when it is not one."""
    boundary = boundary_of(content_type)
    if not boundary:
        raise ValueError("Content-Type must be multipart/mixed with a boundary")
    parts: list[Part] = []
    for chunk in _split(body.decode("utf-8"), boundary):
        part_headers, inner = headed(chunk)
        kind = part_headers.get("content-type", "")
        if kind.lower().startswith("multipart/mixed"):
            inner_boundary = boundary_of(kind)
            if not inner_boundary:
                raise ValueError("a change set has no boundary")
            requests = []
            for sub in _split(inner, inner_boundary):
                sub_headers, sub_inner = headed(sub)
                if (sub_headers.get("content-type") or "").lower().startswith("multipart"):
                    raise ValueError("change sets cannot be nested")
                requests.append(_http(sub_headers, sub_inner))
            parts.append(Part(requests, changeset=True))
        else:
            parts.append(Part([_http(part_headers, inner)], changeset=False))
    return parts


def _http(part_headers: dict[str, str], text: str) -> InnerRequest:
    """An ``application/http`` part: request line, headers, blank line, body."""
    first, headers, body = http_part(text)
    method, url, *_ = first.split(" ")
    return InnerRequest(method.upper(), url, headers, body.encode(),
                        part_headers.get("content-id"))


def _response_text(response: InnerResponse, body_type: str) -> str:
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if response.content_id:
        lines.append(f"Content-ID: {response.content_id}")
    lines += ["", f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Status')}"]
    if response.body:
        lines.append(f"Content-Type: {body_type}")
    lines += [f"{k}: {v}" for k, v in response.headers.items()]
    lines += ["", response.body.decode() if response.body else ""]
    return "\r\n".join(lines)


def render_batch(items: Sequence[InnerResponse | list[InnerResponse]], *,
                 body_type: str = "application/json; odata.metadata=minimal"
                 ) -> tuple[str, bytes]:
    """The ``$batch`` answer (content type, body): a list is a change set that
    applied, an ``InnerResponse`` a lone request or a change set that failed.
    ``body_type`` is each answer body's content type (OData 4.0's by
    default; 2.0 says ``application/json``)."""
    boundary = f"batchresponse_{uuid.uuid4()}"
    out: list[str] = []
    for item in items:
        if isinstance(item, list):
            inner = f"changesetresponse_{uuid.uuid4()}"
            nested = "".join(f"--{inner}\r\n{_response_text(r, body_type)}\r\n"
                             for r in item)
            out.append(f"--{boundary}\r\nContent-Type: multipart/mixed; boundary={inner}"
                       f"\r\n\r\n{nested}--{inner}--\r\n")
        else:
            out.append(f"--{boundary}\r\n{_response_text(item, body_type)}\r\n")
    text = "".join(out) + f"--{boundary}--\r\n"
    return f"multipart/mixed; boundary={boundary}", text.encode()
