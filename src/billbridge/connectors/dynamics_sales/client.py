"""HTTP client of the Dataverse Web API v9.2: the only code here that speaks
to Dynamics 365 Sales.

OAuth 2.0 client credentials against the Entra ID token endpoint (a plain
form POST, the request documented for the v2.0 endpoint; MSAL's
``ConfidentialClientApplication`` gets the same token from the emulator in the
contract test), the token renewed ahead of its expiry and once more on a 401;
the service protection limits honoured (6,000 requests per 300 s as a rolling
token bucket, at most 52 calls in flight, every 429's ``Retry-After``
waited out); ``@odata.nextLink`` paging under ``Prefer: odata.maxpagesize``
with loop detection; and ``$batch`` bodies of change sets, written and read
here.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from billbridge.connectors.base import PermanentError, RateLimit, TransientError
from billbridge.connectors.http import VendorHttp
from billbridge.connectors.ratelimit import MonotonicClock, rolling_window

API_PATH = "/api/data/v9.2"
MAX_PAGE_SIZE = 5000  # odata.maxpagesize: default and maximum
BATCH_LIMIT = 1000  # requests in one $batch
CONCURRENCY_LIMIT = 52  # calls in flight per user
DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
ODATA_HEADERS = {"OData-MaxVersion": "4.0", "OData-Version": "4.0",
                 "Accept": "application/json"}
_BOUNDARY = re.compile(r'boundary="?([^";,\s]+)"?', re.IGNORECASE)


def dataverse_rate_limit(requests: int = 6000, per_seconds: float = 300.0) -> RateLimit:
    """Service protection counts requests per user over a sliding 300 s window."""
    return rolling_window(requests, per_seconds)


class DeltaTokenExpired(Exception):
    """Dataverse refused a delta link (its token is older than the table's
    change-tracking retention): the table must be read again from the start."""


def describe(response: httpx.Response) -> tuple[str, str]:
    """Dataverse's ``{"error": {"code", "message"}}`` as (code, message)."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP_{response.status_code}", response.text[:200] or response.reason_phrase
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return (str(error.get("code") or f"HTTP_{response.status_code}"),
                str(error.get("message") or error))
    return f"HTTP_{response.status_code}", str(body)[:200]


def key_segment(entity_set: str, key: str | Mapping[str, Any]) -> str:
    """``accounts(<guid>)`` or ``accounts(accountnumber='A-1')``: a record by
    primary id or by alternate key (strings quoted, quotes doubled)."""
    if isinstance(key, str):
        return f"{entity_set}({key})"

    def literal(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return str(value)
        return "'" + str(value).replace("'", "''") + "'"

    inner = ",".join(f"{name}={literal(value)}" for name, value in key.items())
    return f"{entity_set}({quote(inner, safe=chr(39) + '=,()')})"


@dataclass(frozen=True, slots=True)
class Operation:
    """One request of a change set."""

    method: str
    url: str  # relative to the API root, e.g. ``opportunities(<guid>)``
    body: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Answer:
    """One request's answer inside a ``$batch`` response."""

    status: int
    body: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)

    def error(self) -> tuple[str, str]:
        try:
            error = json.loads(self.body).get("error") or {}
        except (ValueError, AttributeError):
            return f"HTTP_{self.status}", self.body[:200]
        return str(error.get("code") or f"HTTP_{self.status}"), str(error.get("message") or "")


@dataclass(frozen=True, slots=True)
class ChangeSetResult:
    """What became of one change set: ``answers`` (one per request) when it
    applied; ``failure`` when it was rolled back; neither when Dataverse never
    reached it (the batch stopped before)."""

    answers: list[Answer] | None = None
    failure: Answer | None = None


def encode_batch(api: str, changesets: Sequence[Sequence[Operation]]) -> tuple[str, bytes]:
    """A ``$batch`` body with one change set per entry (content type, body)."""
    boundary = f"batch_{uuid.uuid4()}"
    out: list[str] = []
    content_id = 0
    for operations in changesets:
        inner = f"changeset_{uuid.uuid4()}"
        out.append(f"--{boundary}\r\nContent-Type: multipart/mixed; boundary={inner}\r\n\r\n")
        for op in operations:
            content_id += 1
            lines = [f"--{inner}", "Content-Type: application/http",
                     "Content-Transfer-Encoding: binary", f"Content-ID: {content_id}", "",
                     f"{op.method} {api}/{op.url} HTTP/1.1",
                     "Content-Type: application/json; type=entry"]
            lines += [f"{k}: {v}" for k, v in op.headers.items()]
            lines += ["", json.dumps(op.body or {}, separators=(",", ":"))]
            out.append("\r\n".join(lines) + "\r\n")
        out.append(f"--{inner}--\r\n")
    out.append(f"--{boundary}--\r\n")
    return f"multipart/mixed; boundary={boundary}", "".join(out).encode()


def _parts(text: str, boundary: str) -> list[tuple[dict[str, str], str]]:
    """The MIME parts between ``--boundary`` lines: (headers, content)."""
    parts = []
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


def _answer(content: str) -> Answer:
    """An ``application/http`` response part: status line, headers, body."""
    lines = content.lstrip("\n").split("\n")
    status = int(lines[0].split(" ")[1])
    headers: dict[str, str] = {}
    index = 1
    while index < len(lines) and lines[index].strip():
        name, _, value = lines[index].partition(":")
        headers[name.strip().lower()] = value.strip()
        index += 1
    return Answer(status, "\n".join(lines[index + 1:]).strip(), headers)


def decode_batch(content_type: str, body: str, sent: int) -> list[ChangeSetResult]:
    """One result per change set sent, in order."""
    found = _BOUNDARY.search(content_type or "")
    if not found:
        raise TransientError("Dataverse $batch: the answer is not multipart "
                             f"({content_type or 'no content type'})", code="BAD_BATCH_ANSWER")
    results: list[ChangeSetResult] = []
    for headers, content in _parts(body, found.group(1)):
        kind = headers.get("content-type", "")
        inner = _BOUNDARY.search(kind) if kind.lower().startswith("multipart/mixed") else None
        if inner is not None:
            results.append(ChangeSetResult(
                answers=[_answer(c) for _h, c in _parts(content, inner.group(1))]))
        else:
            answer = _answer(content)
            results.append(ChangeSetResult(failure=answer) if answer.status >= 400
                           else ChangeSetResult(answers=[answer]))
    return (results + [ChangeSetResult()] * sent)[:sent]


class DataverseClient:
    """One Dataverse environment as one application user: its token, its
    limits and its paging, through the shared ``VendorHttp`` transport."""

    def __init__(self, base_url: str, *, tenant: str, client_id: str, client_secret: str,
                 authority: str | None = None, scope: str | None = None,
                 rate_limit: RateLimit | None = None, concurrency: int = CONCURRENCY_LIMIT,
                 clock: MonotonicClock | None = None, refresh_margin: float = 300.0,
                 max_429_retries: int = 5, max_retry_wait: float = 30.0,
                 timeout: float = 30.0, expired_token_statuses: Sequence[int] = (400, 410),
                 verify: Any = True, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.api = self.base_url + API_PATH
        self.token_url = (f"{(authority or DEFAULT_AUTHORITY).rstrip('/')}/{tenant}"
                          "/oauth2/v2.0/token")
        self.scope = scope or f"{self.base_url}/.default"
        self.client_id, self.client_secret = client_id, client_secret
        self.refresh_margin = refresh_margin
        self.expired_token_statuses = tuple(expired_token_statuses)
        self.rate_limit = rate_limit or dataverse_rate_limit()
        self.http = VendorHttp(
            "Dataverse", self.api, rate_limit=self.rate_limit, clock=clock,
            authorise=self._authorise, refresh=self.renew_token, read_error=describe,
            concurrency=concurrency, max_429_retries=max_429_retries,
            max_retry_wait=max_retry_wait, timeout=timeout, verify=verify,
            headers=ODATA_HEADERS, transport=transport)
        # The token endpoint is Entra ID's, not Dataverse's: its calls do not
        # count against the environment's limits.
        self._auth_http = httpx.Client(timeout=timeout, verify=verify, transport=transport)
        self._token: str | None = None
        self._expires_at = 0.0
        self._token_lock = threading.Lock()
        self.tokens_fetched = 0

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
        """The current token, fetched again once it is within
        ``refresh_margin`` seconds of its expiry."""
        with self._token_lock:
            if self._token is None or \
                    self.http.clock.monotonic() >= self._expires_at - self.refresh_margin:
                self._fetch_token()
            assert self._token is not None
            return self._token

    def renew_token(self) -> str:
        with self._token_lock:
            self._fetch_token()
            assert self._token is not None
            return self._token

    def _fetch_token(self) -> None:
        form = {"grant_type": "client_credentials", "client_id": self.client_id,
                "client_secret": self.client_secret, "scope": self.scope}
        try:
            response = self._auth_http.post(self.token_url, data=form)
        except httpx.TransportError as exc:
            raise TransientError(f"Dataverse token request to {self.token_url}: "
                                 f"{exc.__class__.__name__}", code="CONNECTION") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise TransientError(f"Dataverse token request: HTTP {response.status_code}",
                                 code=f"HTTP_{response.status_code}")
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or not body.get("access_token"):
            reason = body.get("error_description") or body.get("error") or response.text[:200]
            raise PermanentError(f"Dataverse token request refused (HTTP "
                                 f"{response.status_code}): {reason}; check the tenant, "
                                 "client_id, client_secret and scope of this connection",
                                 code="TARGET_AUTH")
        self._token = str(body["access_token"])
        self._expires_at = self.http.clock.monotonic() + float(body.get("expires_in") or 3600)
        self.tokens_fetched += 1

    # -- reads ---------------------------------------------------------------------
    def page(self, url: str, what: str, *, params: Mapping[str, str] | None = None,
             page_size: int = MAX_PAGE_SIZE, track_changes: bool = False) -> dict[str, Any]:
        """One page: ``url`` is an entity set (with ``params``) or a link
        Dataverse gave (``@odata.nextLink``/``@odata.deltaLink``, sent as is).
        A refused delta link raises ``DeltaTokenExpired``."""
        prefer = [f"odata.maxpagesize={max(1, min(page_size, MAX_PAGE_SIZE))}"]
        if track_changes:
            prefer.insert(0, "odata.track-changes")
        delta = "$deltatoken=" in url or "%24deltatoken=" in url
        response = self.http.request(
            "GET", url, what, params=dict(params or {}) or None,
            headers={"Prefer": ",".join(prefer)},
            expected=self.expired_token_statuses if delta else ())
        if response.status_code >= 300:
            _code, message = describe(response)
            raise DeltaTokenExpired(f"{what}: HTTP {response.status_code}: {message}")
        body = response.json()
        if not isinstance(body, dict) or not isinstance(body.get("value"), list):
            raise TransientError(f"Dataverse {what}: the answer has no 'value' list",
                                 code="BAD_ANSWER")
        return body

    def pages(self, entity_set: str, what: str, *, params: Mapping[str, str],
              page_size: int = MAX_PAGE_SIZE) -> Iterator[dict[str, Any]]:
        """Every page of a query, following ``@odata.nextLink``; a link
        offered twice stops with an error instead of looping."""
        seen: set[str] = set()
        body = self.page(entity_set, what, params=params, page_size=page_size)
        while True:
            yield body
            link = body.get("@odata.nextLink")
            if not link:
                return
            if link in seen:
                raise PermanentError(f"Dataverse {what}: the nextLink {link[:120]} was "
                                     "offered twice; stopping instead of looping",
                                     code="PAGINATION_LOOP")
            seen.add(link)
            body = self.page(str(link), what, page_size=page_size)

    def rows_by_id(self, entity_set: str, primary_id: str, ids: Sequence[str],
                   columns: Sequence[str], *, chunk: int = 25) -> list[dict[str, Any]]:
        """Rows by primary id (``$filter`` of ``or``-ed ids, ``chunk`` a call,
        so the URL stays short); ids Dataverse does not hold are absent."""
        unique = list(dict.fromkeys(i for i in ids if i))
        found: list[dict[str, Any]] = []
        for start in range(0, len(unique), chunk):
            part = unique[start:start + chunk]
            query = {"$select": ",".join(dict.fromkeys([primary_id, *columns])),
                     "$filter": " or ".join(f"{primary_id} eq {i}" for i in part)}
            for body in self.pages(entity_set, f"{entity_set} by id", params=query):
                found.extend(r for r in body["value"] if isinstance(r, dict))
        return found

    def row(self, entity_set: str, row_id: str,
            columns: Sequence[str]) -> dict[str, Any] | None:
        """One row by primary id, or None when Dataverse has none."""
        response = self.http.request(
            "GET", key_segment(entity_set, row_id), f"{entity_set} read",
            params={"$select": ",".join(columns)}, expected=(404,))
        if response.status_code == 404:
            return None
        body = response.json()
        return body if isinstance(body, dict) else None

    # -- writes --------------------------------------------------------------------
    def batch(self, changesets: Sequence[Sequence[Operation]]) -> list[ChangeSetResult]:
        """``POST $batch`` of change sets (at most 1,000 requests in all), with
        ``Prefer: odata.continue-on-error`` so one refused change set does not
        stop the others."""
        total = sum(len(c) for c in changesets)
        if total > BATCH_LIMIT:
            raise ValueError(f"at most {BATCH_LIMIT} requests per Dataverse $batch, not {total}")
        content_type, body = encode_batch(self.api, changesets)
        response = self.http.request(
            "POST", "$batch", f"$batch of {len(changesets)} change sets", content=body,
            headers={"Content-Type": content_type, "Prefer": "odata.continue-on-error"})
        return decode_batch(response.headers.get("content-type", ""), response.text,
                            len(changesets))
