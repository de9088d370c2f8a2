"""The client side of OData 4.0 as Microsoft's services speak it (Dataverse
for Dynamics 365 Sales, the ``/data`` entities of Dynamics 365 Finance):
literals and key segments, JSON with exact decimals, the error body,
``$batch`` bodies of change sets written and read, ``@odata.nextLink``
paging under the shared page-loop guard, and ``ODataService``, the token and
transport a vendor's client builds on. Each vendor's names, limits and
headers stay in its own folder."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx

from billbridge.connectors.base import Connection, RateLimit, TransientError
from billbridge.connectors.entra import EntraToken
from billbridge.connectors.http import VendorHttp
from billbridge.connectors.http import loads as loads  # the OData clients read with it
from billbridge.connectors.paging import PageGuard
from billbridge.connectors.ratelimit import MonotonicClock

ODATA_HEADERS = {"OData-MaxVersion": "4.0", "OData-Version": "4.0",
                 "Accept": "application/json"}
_BOUNDARY = re.compile(r'boundary="?([^";,\s]+)"?', re.IGNORECASE)
_DECIMAL = re.compile(r'"\\u0000dec:(-?[0-9.]+)"')


# -- values ------------------------------------------------------------------------
def literal(value: Any) -> str:
    """An OData literal: strings quoted (quotes doubled), numbers as they are."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def key_segment(entity: str, key: Mapping[str, Any]) -> str:
    """``accounts(accountnumber='A-1')``, ``CustomersV3(dataAreaId='usmf',
    CustomerAccount='C-1')``: a record by its key fields."""
    inner = ",".join(f"{name}={literal(value)}" for name, value in key.items())
    return f"{entity}({quote(inner, safe=chr(39) + '=,()*-_.')})"


def dumps(value: Any) -> str:
    """Compact JSON with each ``Decimal`` written as the exact number it is
    (Edm.Decimal, never through a float)."""
    def encode(item: Any) -> Any:
        if isinstance(item, Mapping):
            return {k: encode(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [encode(v) for v in item]
        if isinstance(item, Decimal):
            if not item.is_finite():
                raise ValueError(f"{item} is not a number OData can hold")
            return f"\x00dec:{item:f}"
        return item
    return _DECIMAL.sub(r"\1", json.dumps(encode(value), separators=(",", ":")))


def json_answer(response: httpx.Response, service: str, what: str) -> Any:
    """A read's answer as ``loads`` reads it; ``TransientError`` BAD_ANSWER
    when it is not JSON."""
    try:
        return loads(response.text)
    except ValueError:
        raise TransientError(f"{service} {what}: the answer is not JSON",
                             code="BAD_ANSWER") from None


def error_of(body: Any, status: int) -> tuple[str, str] | None:
    """OData's ``{"error": {"code", "message", "innererror"}}`` as (code,
    message), the inner error's message (what to fix, where the service says)
    after the outer one; None when the body is no such error."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None
    inner = error.get("innererror")
    detail = inner.get("message") if isinstance(inner, dict) else None
    message = error.get("message")
    if isinstance(message, dict):  # OData 2.0: {"lang": "en", "value": "..."}
        message = message.get("value")
    parts = [str(m) for m in dict.fromkeys((message, detail)) if m]
    return str(error.get("code") or f"HTTP_{status}"), " ".join(parts) or str(error)


def describe(response: httpx.Response) -> tuple[str, str]:
    """A refused call's (code, message), for ``VendorHttp``'s ``read_error``."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP_{response.status_code}", response.text[:200] or response.reason_phrase
    return error_of(body, response.status_code) or \
        (f"HTTP_{response.status_code}", str(body)[:200])


# -- $batch ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Operation:
    """One request of a change set; ``url`` is relative to the service root."""

    method: str
    url: str
    body: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Answer:
    """One request's answer inside a ``$batch`` response."""

    status: int
    body: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    content_id: str | None = None

    def json(self) -> Any:
        return loads(self.body) if self.body.strip() else None

    def error(self) -> tuple[str, str]:
        try:
            found = error_of(loads(self.body), self.status)
        except ValueError:
            return f"HTTP_{self.status}", self.body[:200]
        return found or (f"HTTP_{self.status}", "")


@dataclass(frozen=True, slots=True)
class ChangeSetResult:
    """What became of one change set: ``answers`` (one per request) when it
    applied; ``failure`` when it was rolled back, with ``failed_at`` (which
    request of the change set) when the service named it by Content-ID;
    neither when the batch stopped before it."""

    answers: list[Answer] | None = None
    failure: Answer | None = None
    failed_at: int | None = None


ContentIds = dict[str, tuple[int, int]]
"""Content-ID → (change set, request within it)."""


def encode_batch(root: str, changesets: Sequence[Sequence[Operation]], *,
                 entry_type: str = "application/json; type=entry"
                 ) -> tuple[str, bytes, ContentIds]:
    """A ``$batch`` body with one change set per entry: (content type, body,
    what each Content-ID names). ``entry_type`` is each request's content
    type (OData 4.0's by default; 2.0 says ``application/json``); with an
    empty ``root`` each request names its URL relative to the service."""
    boundary = f"batch_{uuid.uuid4()}"
    out: list[str] = []
    ids: ContentIds = {}
    content_id = 0
    for number, operations in enumerate(changesets):
        inner = f"changeset_{uuid.uuid4()}"
        out.append(f"--{boundary}\r\nContent-Type: multipart/mixed; boundary={inner}\r\n\r\n")
        for index, op in enumerate(operations):
            content_id += 1
            ids[str(content_id)] = (number, index)
            lines = [f"--{inner}", "Content-Type: application/http",
                     "Content-Transfer-Encoding: binary", f"Content-ID: {content_id}", "",
                     f"{op.method} {f'{root}/{op.url}' if root else op.url} HTTP/1.1",
                     f"Content-Type: {entry_type}"]
            lines += [f"{k}: {v}" for k, v in op.headers.items()]
            lines += ["", dumps(op.body or {}) if op.method != "DELETE" else ""]
            out.append("\r\n".join(lines) + "\r\n")
        out.append(f"--{inner}--\r\n")
    out.append(f"--{boundary}--\r\n")
    return f"multipart/mixed; boundary={boundary}", "".join(out).encode(), ids


def _parts(text: str, boundary: str) -> list[tuple[dict[str, str], str]]:
    """The MIME parts between ``--boundary`` lines: (headers, content)."""
    parts: list[str] = []
    current: list[str] | None = None
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.strip() in (f"--{boundary}", f"--{boundary}--"):
            if current is not None:
                parts.append("\n".join(current))
            current = None if line.strip() == f"--{boundary}--" else []
            continue
        if current is not None:
            current.append(line)
    return [headed(part) for part in parts]


def headed(text: str) -> tuple[dict[str, str], str]:
    """A MIME part's header lines (lower-case names) up to the first blank
    line, and the rest: for both sides of ``$batch`` (emulation.odata too)."""
    head, _, rest = text.replace("\r\n", "\n").lstrip("\n").partition("\n\n")
    headers = {}
    for line in head.split("\n"):
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return headers, rest


def http_part(text: str) -> tuple[str, dict[str, str], str]:
    """An ``application/http`` part's first line (a request or a status
    line), its headers (lower-case names) and its body: for both sides of
    ``$batch`` (emulation.odata too)."""
    lines = text.replace("\r\n", "\n").lstrip("\n").split("\n")
    headers: dict[str, str] = {}
    index = 1
    while index < len(lines) and lines[index].strip():
        name, _, value = lines[index].partition(":")
        headers[name.strip().lower()] = value.strip()
        index += 1
    return lines[0], headers, "\n".join(lines[index + 1:]).strip()


def _answer(service: str, part_headers: Mapping[str, str], content: str) -> Answer:
    """An ``application/http`` response part: status line, headers, body."""
    first, headers, body = http_part(content)
    try:
        status = int(first.split(" ")[1])
    except (IndexError, ValueError):
        raise TransientError(f"{service} $batch: an answer part has no status line: "
                             f"{first[:80]!r}", code="BAD_BATCH_ANSWER") from None
    return Answer(status, body, headers, part_headers.get("content-id"))


def decode_batch(service: str, content_type: str, body: str, sent: int,
                 ids: ContentIds | None = None) -> list[ChangeSetResult]:
    """One result per change set sent, in order; with ``ids`` (from
    ``encode_batch``) a failure names the request it was."""
    found = _BOUNDARY.search(content_type or "")
    if not found:
        raise TransientError(f"{service} $batch: the answer is not multipart "
                             f"({content_type or 'no content type'})", code="BAD_BATCH_ANSWER")
    results: list[ChangeSetResult] = []
    for headers, content in _parts(body, found.group(1)):
        kind = headers.get("content-type", "")
        inner = _BOUNDARY.search(kind) if kind.lower().startswith("multipart/mixed") else None
        if inner is not None:
            results.append(ChangeSetResult(answers=[
                _answer(service, h, c) for h, c in _parts(content, inner.group(1))]))
        else:
            answer = _answer(service, headers, content)
            results.append(ChangeSetResult(failure=answer) if answer.status >= 400
                           else ChangeSetResult(answers=[answer]))
    results = (results + [ChangeSetResult()] * sent)[:sent]
    return [_placed(r, ids or {}, number) for number, r in enumerate(results)]


def _placed(result: ChangeSetResult, ids: ContentIds, number: int) -> ChangeSetResult:
    """Which request of change set ``number`` its failure names, by Content-ID;
    an id naming another change set's request names none."""
    if result.failure is None or result.failure.content_id is None:
        return result
    where = ids.get(result.failure.content_id)
    if where is None or where[0] != number:
        return result
    return ChangeSetResult(failure=result.failure, failed_at=where[1])


# -- paging ------------------------------------------------------------------------
def next_links(first: Callable[[], dict[str, Any]], follow: Callable[[str], dict[str, Any]],
               listing: str, *, link_of: Callable[[dict[str, Any]], Any] | None = None
               ) -> Iterator[dict[str, Any]]:
    """Every page of a query: ``first()``, then ``follow(link)`` for each
    next link (``@odata.nextLink``, or what ``link_of`` reads from a page,
    e.g. OData 2.0's ``d.__next``); a link offered twice stops with
    ``PAGINATION_LOOP``."""
    guard = PageGuard(listing)
    body = first()
    while True:
        yield body
        link = link_of(body) if link_of is not None else body.get("@odata.nextLink")
        if not link:
            return
        guard.once(str(link), f"the nextLink {str(link)[:120]}", repeat="offered")
        body = follow(str(link))


# -- the service -------------------------------------------------------------------
def entra_options(connection: Connection) -> dict[str, Any]:
    """What every Microsoft service's client takes from a connection:
    credentials ``tenant``, ``client_id``, ``client_secret``; options
    ``scope`` (default ``<environment URL>/.default``) and
    ``token_refresh_margin`` seconds (300)."""
    creds, options = connection.credentials, connection.options
    return {"tenant": str(creds.get("tenant", "")),
            "client_id": str(creds.get("client_id", "")),
            "client_secret": str(creds.get("client_secret", "")),
            "scope": options.get("scope") or None,
            "refresh_margin": float(options.get("token_refresh_margin", 300))}


def account_of(connection: Connection) -> tuple[str, str, str]:
    """The key of one application in one environment: one client each."""
    return (connection.name, connection.base_url,
            str(connection.credentials.get("client_id", "")))


class ODataService:
    """One Microsoft OData service as one Entra application: its token
    (``token_url``, ``scope`` by default ``<base_url>/.default``) and the
    shared ``VendorHttp`` transport at ``root`` under its limits, and
    ``$batch``. A vendor's client adds its reads and writes."""

    def __init__(self, service: str, base_url: str, root_path: str, *, token_url: str,
                 client_id: str, client_secret: str, scope: str | None, rate_limit: RateLimit,
                 concurrency: int, batch_limit: int, clock: MonotonicClock | None = None,
                 refresh_margin: float = 300.0, max_429_retries: int = 5,
                 max_retry_wait: float = 30.0, timeout: float = 30.0, verify: Any = True,
                 transport: httpx.BaseTransport | None = None, auth_hint: str = "") -> None:
        self.service = service
        self.base_url = base_url.rstrip("/")
        self.root = self.base_url + root_path
        self.rate_limit = rate_limit
        self.batch_limit = batch_limit
        self.batches_sent = 0
        self.token = EntraToken(
            service, token_url, client_id=client_id, client_secret=client_secret,
            scope=scope or f"{self.base_url}/.default",
            now=lambda: self.http.clock.monotonic(), refresh_margin=refresh_margin,
            timeout=timeout, verify=verify, transport=transport, hint=auth_hint)
        self.http = VendorHttp(
            service, self.root, rate_limit=rate_limit, clock=clock,
            authorise=self.token.header, refresh=self.token.renew, read_error=describe,
            concurrency=concurrency, max_429_retries=max_429_retries,
            max_retry_wait=max_retry_wait, timeout=timeout, verify=verify,
            headers=ODATA_HEADERS, transport=transport)

    @property
    def requests_sent(self) -> int:
        return self.http.requests_sent

    @property
    def tokens_fetched(self) -> int:
        return self.token.fetched

    def access_token(self) -> str:
        """The current token, fetched again once it is within the refresh
        margin of its expiry."""
        return self.token.current()

    def close(self) -> None:
        self.http.close()
        self.token.close()

    def batch(self, changesets: Sequence[Sequence[Operation]]) -> list[ChangeSetResult]:
        """``POST $batch`` of change sets (at most ``batch_limit`` operations
        in all), with ``Prefer: odata.continue-on-error`` so one refused
        change set does not stop the others."""
        total = sum(len(c) for c in changesets)
        if total > self.batch_limit:
            raise ValueError(f"at most {self.batch_limit} operations per {self.service} $batch, "
                             f"not {total}")
        content_type, body, ids = encode_batch(self.root, changesets)
        self.batches_sent += 1
        response = self.http.request(
            "POST", "$batch", f"$batch of {len(changesets)} change sets", content=body,
            headers={"Content-Type": content_type, "Prefer": "odata.continue-on-error"})
        return decode_batch(self.service, response.headers.get("content-type", ""),
                            response.text, len(changesets), ids)
