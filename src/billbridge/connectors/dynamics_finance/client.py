"""HTTP client of Dynamics 365 Finance's OData data entities (``/data``): the
only code here that speaks to finance and operations.

OAuth 2.0 client credentials against a Microsoft Entra ID token endpoint (the
v2.0 form request, ``scope`` = ``<environment URL>/.default``), renewed ahead
of expiry and once more on a 401; the service protection limits (6,000
requests per user in a sliding 300 s window as a token bucket, at most 52
calls in flight, each 429's ``Retry-After`` waited out); server-driven
``@odata.nextLink`` paging with loop detection; ``$batch`` bodies of change
sets written and read here; Edm.Decimal figures written as exact JSON
numbers and read back as ``Decimal``.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx

from billbridge.connectors.base import PermanentError, RateLimit, TransientError
from billbridge.connectors.http import VendorHttp
from billbridge.connectors.ratelimit import MonotonicClock, rolling_window

DATA_PATH = "/data"
MAX_PAGE_SIZE = 10_000  # server-driven paging's largest page
BATCH_LIMIT = 5000  # operations in one $batch
CONCURRENCY_LIMIT = 52  # requests in flight per user
DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
ODATA_HEADERS = {"OData-MaxVersion": "4.0", "OData-Version": "4.0",
                 "Accept": "application/json"}
_BOUNDARY = re.compile(r'boundary="?([^";,\s]+)"?', re.IGNORECASE)
_DECIMAL = re.compile(r'"\\u0000dec:(-?[0-9.]+)"')


def finance_rate_limit(requests: int = 6000, per_seconds: float = 300.0) -> RateLimit:
    """Service protection counts requests per user over a sliding 300 s window."""
    return rolling_window(requests, per_seconds)


def dumps(value: Any) -> str:
    """JSON with each ``Decimal`` written as the exact number it is (never
    through a float)."""
    def encode(item: Any) -> Any:
        if isinstance(item, Mapping):
            return {k: encode(v) for k, v in item.items()}
        if isinstance(item, (list, tuple)):
            return [encode(v) for v in item]
        if isinstance(item, Decimal):
            if not item.is_finite():
                raise ValueError(f"{item} is not a number Finance can hold")
            return f"\x00dec:{item:f}"
        return item
    return _DECIMAL.sub(r"\1", json.dumps(encode(value), separators=(",", ":")))


def loads(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


def describe(response: httpx.Response) -> tuple[str, str]:
    """OData's ``{"error": {"code", "message", "innererror"}}`` as (code, message)."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP_{response.status_code}", response.text[:200] or response.reason_phrase
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        inner = error.get("innererror") if isinstance(error.get("innererror"), dict) else {}
        message = str(error.get("message") or "")
        if inner and inner.get("message"):
            message = f"{message} {inner['message']}".strip()
        return str(error.get("code") or f"HTTP_{response.status_code}"), message
    return f"HTTP_{response.status_code}", str(body)[:200]


def literal(value: Any) -> str:
    """An OData literal: strings quoted (quotes doubled), numbers as they are."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal)):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def key_segment(entity: str, key: Mapping[str, Any]) -> str:
    """``CustomersV3(dataAreaId='usmf',CustomerAccount='C-1')``: every key
    field, as Finance requires in an entity URL."""
    inner = ",".join(f"{name}={literal(value)}" for name, value in key.items())
    return f"{entity}({quote(inner, safe=chr(39) + '=,()*-_.')})"


@dataclass(frozen=True, slots=True)
class Operation:
    """One request of a change set; ``url`` is relative to ``/data``."""

    method: str
    url: str
    body: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """One request's answer inside a ``$batch`` response."""

    status: int
    body: str = ""
    content_id: str | None = None

    def json(self) -> Any:
        return loads(self.body) if self.body.strip() else None

    def error(self) -> tuple[str, str]:
        try:
            error = (loads(self.body) or {}).get("error") or {}
        except (ValueError, AttributeError):
            return f"HTTP_{self.status}", self.body[:200]
        inner = error.get("innererror")
        detail = inner.get("message") if isinstance(inner, dict) else None
        message = " ".join(str(m) for m in (error.get("message"), detail) if m)
        return str(error.get("code") or f"HTTP_{self.status}"), message


@dataclass(frozen=True, slots=True)
class ChangeSetResult:
    """What became of one change set: ``answers`` (one per request) when it
    applied; ``failure`` (the request that failed, its ``content_id`` naming
    it when Finance says) when it was rolled back; neither when the batch
    stopped before it."""

    answers: list[Answer] | None = None
    failure: Answer | None = None
    failed_at: int | None = None  # which request of the change set, when Finance named it


ContentIds = dict[str, tuple[int, int]]
"""Content-ID → (change set, request within it)."""


def encode_batch(root: str, changesets: Sequence[Sequence[Operation]]
                 ) -> tuple[str, bytes, ContentIds]:
    """A ``$batch`` body with one change set per entry: (content type, body,
    what each Content-ID names)."""
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
                     f"{op.method} {root}/{op.url} HTTP/1.1",
                     "Content-Type: application/json; type=entry", "",
                     dumps(op.body or {}) if op.method != "DELETE" else ""]
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
    out = []
    for part in parts:
        head, _, content = part.lstrip("\n").partition("\n\n")
        headers = {}
        for header in head.split("\n"):
            name, colon, value = header.partition(":")
            if colon:
                headers[name.strip().lower()] = value.strip()
        out.append((headers, content))
    return out


def _answer(part_headers: Mapping[str, str], content: str) -> Answer:
    """An ``application/http`` response part: status line, headers, body."""
    lines = content.lstrip("\n").split("\n")
    try:
        status = int(lines[0].split(" ")[1])
    except (IndexError, ValueError):
        raise TransientError(f"Finance $batch: an answer part has no status line: "
                             f"{lines[0][:80]!r}", code="BAD_BATCH_ANSWER") from None
    index = 1
    while index < len(lines) and lines[index].strip():
        index += 1
    return Answer(status, "\n".join(lines[index + 1:]).strip(), part_headers.get("content-id"))


def decode_batch(content_type: str, body: str, sent: int) -> list[ChangeSetResult]:
    """One result per change set sent, in order."""
    found = _BOUNDARY.search(content_type or "")
    if not found:
        raise TransientError("Finance $batch: the answer is not multipart "
                             f"({content_type or 'no content type'})", code="BAD_BATCH_ANSWER")
    results: list[ChangeSetResult] = []
    for headers, content in _parts(body, found.group(1)):
        kind = headers.get("content-type", "")
        inner = _BOUNDARY.search(kind) if kind.lower().startswith("multipart/mixed") else None
        if inner is not None:
            results.append(ChangeSetResult(
                answers=[_answer(h, c) for h, c in _parts(content, inner.group(1))]))
        else:
            answer = _answer(headers, content)
            results.append(ChangeSetResult(failure=answer) if answer.status >= 400
                           else ChangeSetResult(answers=[answer]))
    return (results + [ChangeSetResult()] * sent)[:sent]


class FinanceClient:
    """One finance and operations environment as one Entra application (a
    mapped user): its token, its limits and its paging, through the shared
    ``VendorHttp`` transport."""

    def __init__(self, base_url: str, *, tenant: str, client_id: str, client_secret: str,
                 token_url: str | None = None, scope: str | None = None,
                 rate_limit: RateLimit | None = None, concurrency: int = CONCURRENCY_LIMIT,
                 clock: MonotonicClock | None = None, refresh_margin: float = 300.0,
                 max_429_retries: int = 5, max_retry_wait: float = 60.0,
                 timeout: float = 30.0, verify: Any = True,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.root = self.base_url + DATA_PATH
        self.token_url = token_url or f"{DEFAULT_AUTHORITY}/{tenant}/oauth2/v2.0/token"
        self.scope = scope or f"{self.base_url}/.default"
        self.client_id, self.client_secret = client_id, client_secret
        self.refresh_margin = refresh_margin
        self.rate_limit = rate_limit or finance_rate_limit()
        self.http = VendorHttp(
            "Finance", self.root, rate_limit=self.rate_limit, clock=clock,
            authorise=self._authorise, refresh=self.renew_token, read_error=describe,
            concurrency=min(concurrency, CONCURRENCY_LIMIT), max_429_retries=max_429_retries,
            max_retry_wait=max_retry_wait, timeout=timeout, verify=verify,
            headers=ODATA_HEADERS, transport=transport)
        # Entra ID's endpoint is not the environment's: its calls do not count
        # against the environment's limits.
        self._auth_http = httpx.Client(timeout=timeout, verify=verify, transport=transport)
        self._token: str | None = None
        self._expires_at = 0.0
        self._token_lock = threading.Lock()
        self.tokens_fetched = 0
        self.batches_sent = 0

    @property
    def requests_sent(self) -> int:
        return self.http.requests_sent

    def close(self) -> None:
        self.http.close()
        self._auth_http.close()

    # -- OAuth client credentials ------------------------------------------------
    def _authorise(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token()}"}

    def access_token(self) -> str:
        with self._token_lock:
            if self._token is None or \
                    self.http.clock.monotonic() >= self._expires_at - self.refresh_margin:
                self._fetch_token()
            assert self._token is not None
            return self._token

    def renew_token(self) -> None:
        with self._token_lock:
            self._fetch_token()

    def _fetch_token(self) -> None:
        form = {"grant_type": "client_credentials", "client_id": self.client_id,
                "client_secret": self.client_secret, "scope": self.scope}
        try:
            response = self._auth_http.post(self.token_url, data=form)
        except httpx.TransportError as exc:
            raise TransientError(f"Finance token request to {self.token_url}: "
                                 f"{exc.__class__.__name__}", code="CONNECTION") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise TransientError(f"Finance token request: HTTP {response.status_code}",
                                 code=f"HTTP_{response.status_code}")
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or not body.get("access_token"):
            reason = body.get("error_description") or body.get("error") or response.text[:200]
            raise PermanentError(f"Finance token request refused (HTTP "
                                 f"{response.status_code}): {reason}; check the tenant, "
                                 "client_id, client_secret and scope of this connection, and "
                                 "that the application is listed under Microsoft Entra "
                                 "applications in Finance", code="TARGET_AUTH")
        self._token = str(body["access_token"])
        self._expires_at = self.http.clock.monotonic() + float(body.get("expires_in") or 3600)
        self.tokens_fetched += 1

    # -- reads ---------------------------------------------------------------------
    def page(self, url: str, what: str, *, params: Mapping[str, str] | None = None
             ) -> dict[str, Any]:
        """One page: ``url`` an entity (with ``params``) or a ``@odata.nextLink``
        as Finance gave it (sent unchanged)."""
        response = self.http.request("GET", url, what, params=dict(params or {}) or None)
        try:
            body = loads(response.text)
        except ValueError:
            raise TransientError(f"Finance {what}: the answer is not JSON",
                                 code="BAD_ANSWER") from None
        if not isinstance(body, dict) or not isinstance(body.get("value"), list):
            raise TransientError(f"Finance {what}: the answer has no 'value' list",
                                 code="BAD_ANSWER")
        return body

    def pages(self, entity: str, what: str, *, params: Mapping[str, str]
              ) -> Iterator[dict[str, Any]]:
        """Every page of a query, following ``@odata.nextLink``; a link
        offered twice stops with an error instead of looping."""
        seen: set[str] = set()
        body = self.page(entity, what, params=params)
        while True:
            yield body
            link = body.get("@odata.nextLink")
            if not link:
                return
            if link in seen:
                raise PermanentError(f"Finance {what}: the nextLink {str(link)[:120]} was "
                                     "offered twice; stopping instead of looping",
                                     code="PAGINATION_LOOP")
            seen.add(str(link))
            body = self.page(str(link), what)

    def rows(self, entity: str, what: str, *, params: Mapping[str, str]
             ) -> list[dict[str, Any]]:
        return [dict(r) for body in self.pages(entity, what, params=params)
                for r in body["value"] if isinstance(r, dict)]

    # -- writes --------------------------------------------------------------------
    def batch(self, changesets: Sequence[Sequence[Operation]]) -> list[ChangeSetResult]:
        """``POST $batch`` of change sets (at most 5,000 operations in all), with
        ``Prefer: odata.continue-on-error`` so one refused change set does not
        stop the others."""
        total = sum(len(c) for c in changesets)
        if total > BATCH_LIMIT:
            raise ValueError(f"at most {BATCH_LIMIT} operations per Finance $batch, not {total}")
        content_type, body, ids = encode_batch(self.root, changesets)
        self.batches_sent += 1
        response = self.http.request(
            "POST", "$batch", f"$batch of {len(changesets)} change sets", content=body,
            headers={"Content-Type": content_type, "Prefer": "odata.continue-on-error"})
        results = decode_batch(response.headers.get("content-type", ""), response.text,
                               len(changesets))
        return [_placed(result, ids, number) for number, result in enumerate(results)]


def _placed(result: ChangeSetResult, ids: ContentIds, number: int) -> ChangeSetResult:
    """Which request of change set ``number`` its failure names, by Content-ID;
    an id naming another change set's request names none."""
    if result.failure is None or result.failure.content_id is None:
        return result
    where = ids.get(result.failure.content_id)
    if where is None or where[0] != number:
        return ChangeSetResult(failure=result.failure)
    return ChangeSetResult(failure=result.failure, failed_at=where[1])
