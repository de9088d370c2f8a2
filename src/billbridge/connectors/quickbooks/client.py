"""The QuickBooks Online Accounting API client: the only code here that speaks
to Intuit.

Every call goes to ``{base}/v3/company/{realmId}/…`` with ``minorversion``,
through the shared ``VendorHttp`` (a realm's 500 requests a minute and 10 a
second as one token bucket, 10 concurrent calls, a bearer token refreshed once
on a 401). Batch calls have their own bucket (40 a minute). A 429 is not
ridden out here: QuickBooks sends no Retry-After and asks for a minute's
pause, so the dispatcher reschedules the work instead of this thread sleeping.

Amounts come back as Decimal (the JSON is parsed with ``parse_float=Decimal``)
and go out as decimal strings, as the official SDK sends them.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import httpx

from billbridge.connectors.base import PermanentError, RateLimit, TransientError
from billbridge.connectors.http import VendorHttp, json_of, read_error
from billbridge.connectors.paging import PageGuard, chunks
from billbridge.connectors.ratelimit import MonotonicClock, TokenBucket
from billbridge.domain.config import ConfigError

DEFAULT_BASE_URL = "https://quickbooks.api.intuit.com"
TOKEN_URL = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"
MINOR_VERSION = 75  # the lowest Intuit still serves; python-quickbooks enforces it too
BATCH_LIMIT = 30  # items per batch call: python-quickbooks' default and the docs' maximum
REALM_CONCURRENCY = 10  # requests in flight per realm (Intuit's limits page)
THROTTLE_WAIT = 60.0  # Intuit: after a 429 "wait 60 seconds before retrying"
JSON = {"Content-Type": "application/json", "Accept": "application/json"}
MAX_RESULTS = 1000  # QuickBooks' ceiling for MAXRESULTS in a query


def quote(value: str) -> str:
    """A query's string literal: single quotes, with quotes and backslashes escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def pinned_minor_version(pinned: str) -> int:
    """The ``minorversion`` an ``api_versions`` entry names: ``76`` or
    ``minorversion=76``."""
    text = str(pinned).strip().removeprefix("minorversion=")
    if not text.isdigit():
        raise ConfigError(f"quickbooks: api_versions names a minorversion by its number "
                         f"(such as {MINOR_VERSION}), not {pinned!r}")
    return int(text)


def realm_rate_limit(per_minute: int = 500) -> RateLimit:
    """At most ``per_minute`` calls in any minute and 10 in any second: a
    burst of one, refilled at the rest of the minute's allowance."""
    return RateLimit(per_minute - 1, 60.0, burst=1)


def batch_rate_limit(per_minute: int = 40) -> RateLimit:
    return RateLimit(per_minute - 1, 60.0, burst=1)


def fault_text(fault: Mapping[str, Any]) -> tuple[str, str]:
    """(code, readable text) of a ``Fault``: ``{"Error": [{Message, Detail, code}], type}``."""
    errors = [e for e in fault.get("Error") or [] if isinstance(e, Mapping)]
    if not errors:
        return str(fault.get("type") or "FAULT"), str(fault)[:200]
    code = str(errors[0].get("code") or fault.get("type") or "FAULT")
    text = "; ".join(f"{e.get('Message')}: {e.get('Detail')}" if e.get("Detail")
                     else str(e.get("Message")) for e in errors)
    return code, f"{text} [{fault.get('type') or 'Fault'} {code}]"


def read_fault(response: httpx.Response) -> tuple[str, str]:
    """QuickBooks' error body ``{"Fault": {...}, "time"}``, or the OAuth
    server's ``{"error", "error_description"}``."""
    try:
        body = response.json()
    except ValueError:
        return read_error(response)
    if isinstance(body, dict) and isinstance(body.get("Fault"), dict):
        return fault_text(body["Fault"])
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"], str(body.get("error_description") or body["error"])
    return read_error(response)


def _encode(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} cannot go into a QuickBooks request")



class QuickBooksClient:
    """One QuickBooks Online company (realm)."""

    def __init__(self, base_url: str, realm_id: str, *, access_token: str = "",
                 refresh_token: str = "", client_id: str = "", client_secret: str = "",
                 token_url: str = TOKEN_URL, minor_version: int = MINOR_VERSION,
                 max_batch: int = BATCH_LIMIT, rate_limit: RateLimit | None = None,
                 batch_limit: RateLimit | None = None, clock: MonotonicClock | None = None,
                 timeout: float = 60.0, verify: Any = True,
                 transport: httpx.BaseTransport | None = None,
                 on_tokens: Callable[[str, str], None] | None = None) -> None:
        if not realm_id:
            raise ValueError("a QuickBooks connection needs the company's realm id")
        self.realm_id = realm_id
        self.access_token = access_token
        self.refresh_token = refresh_token
        self.client_id = client_id
        self.client_secret = client_secret
        self.on_tokens = on_tokens  # (access, refresh) after each refresh, to be stored
        self.token_url = token_url
        self.minor_version = minor_version
        self.max_batch = max(1, min(max_batch, BATCH_LIMIT))
        self.rate_limit = rate_limit or realm_rate_limit()
        self.http = VendorHttp(
            "quickbooks", f"{(base_url or DEFAULT_BASE_URL).rstrip('/')}/v3/company/{realm_id}",
            rate_limit=self.rate_limit, authorise=self._bearer, refresh=self.refresh,
            read_error=read_fault, concurrency=REALM_CONCURRENCY, clock=clock, max_429_retries=0,
            timeout=timeout, verify=verify, transport=transport)
        self.batch_bucket = TokenBucket(batch_limit or batch_rate_limit(), self.http.clock)
        self._batch_pace = threading.Lock()

    def close(self) -> None:
        self.http.close()

    # -- auth ------------------------------------------------------------------
    def _bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    def refresh(self) -> None:
        """``grant_type=refresh_token`` at Intuit's token endpoint (client id and
        secret as HTTP Basic). Intuit may rotate the refresh token: the newest
        one is kept (in memory: see docs/connectors/quickbooks.md)."""
        if not (self.refresh_token and self.client_id and self.client_secret):
            raise PermanentError("quickbooks: the access token was refused and no refresh "
                                 "token, client id and secret are configured", code="TARGET_AUTH")
        basic = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        response = self.http.send("POST", self.token_url, "token refresh",
                                  headers={"Authorization": f"Basic {basic}",
                                           "Accept": "application/json"},
                                  data={"grant_type": "refresh_token",
                                        "refresh_token": self.refresh_token})
        if response.status_code >= 500 or response.status_code == 429:
            raise TransientError(f"quickbooks token refresh: HTTP {response.status_code}",
                                 code=f"HTTP_{response.status_code}")
        if response.status_code != 200:
            code, message = read_fault(response)
            raise PermanentError(f"quickbooks token refresh refused: {code}: {message}",
                                 code="TARGET_AUTH")
        body = response.json()
        self.access_token = str(body["access_token"])
        self.refresh_token = str(body.get("refresh_token") or self.refresh_token)
        if self.on_tokens is not None:
            self.on_tokens(self.access_token, self.refresh_token)

    # -- transport -------------------------------------------------------------
    def _call(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        """One call's JSON body (amounts as Decimal). A 429 becomes a
        TransientError that asks for QuickBooks' minute of rest."""
        params = {"minorversion": str(self.minor_version), **(kwargs.pop("params", None) or {})}
        try:
            response = self.http.request(method, path, what, params=params, **kwargs)
        except TransientError as exc:
            if exc.code == "HTTP_429" and exc.retry_after is None:
                raise TransientError(str(exc), code=exc.code,
                                     retry_after=THROTTLE_WAIT) from None
            raise
        try:
            return json_of(response)
        except ValueError:
            raise TransientError(f"quickbooks {what}: the answer is not JSON: "
                                 f"{response.text[:200]}", code="TARGET_PROTOCOL") from None

    # -- queries ---------------------------------------------------------------
    def query(self, statement: str) -> dict[str, Any]:
        """``GET /query?query=…``: the ``QueryResponse`` object."""
        answer = self._call("GET", "/query", "query", params={"query": statement},
                            headers={"Accept": "application/json"})
        response = (answer or {}).get("QueryResponse")
        return dict(response) if isinstance(response, dict) else {}

    def query_all(self, entity: str, where: str | None, *,
                  page_size: int = MAX_RESULTS) -> list[dict[str, Any]]:
        """Every ``entity`` matching ``where`` (all of them for None), page by
        page (STARTPOSITION is 1-based, MAXRESULTS at most 1000); a page
        offered twice stops the walk instead of looping."""
        records: list[dict[str, Any]] = []
        guard = PageGuard(f"quickbooks {entity} query")
        start = 1
        condition = f" where {where}" if where else ""
        while True:
            page = self.query(f"select * from {entity}{condition} "
                              f"startposition {start} maxresults {page_size}").get(entity) or []
            first = str(page[0].get("Id")) if page else ""
            guard.once(first, f"the first record {first or '(none)'} at position {start}")
            records.extend(r for r in page if isinstance(r, dict))
            if len(page) < page_size:
                return records
            start += page_size

    def queries(self, statements: Sequence[str]) -> list[dict[str, Any]]:
        """Several queries as batch ``Query`` items (30 a call): one
        ``QueryResponse`` per statement, in order."""
        answers: list[dict[str, Any]] = []
        for chunk in chunks(statements, self.max_batch):
            items = [{"bId": f"q{i}", "Query": statement} for i, statement in enumerate(chunk)]
            found = self.batch(items)
            for i, statement in enumerate(chunk):
                item = found.get(f"q{i}")
                if item is None:
                    raise TransientError(f"quickbooks batch query: no answer for {statement!r}",
                                         code="TARGET_PROTOCOL")
                if isinstance(item.get("Fault"), dict):
                    code, message = fault_text(item["Fault"])
                    raise PermanentError(f"quickbooks query {statement!r}: {message}", code=code)
                answers.append(dict(item.get("QueryResponse") or {}))
        return answers

    # -- batch -----------------------------------------------------------------
    def batch(self, items: Sequence[Mapping[str, Any]], *,
              request_id: str | None = None) -> dict[str, dict[str, Any]]:
        """``POST /batch``: the ``BatchItemResponse`` items by ``bId``.

        With a ``request_id``, a dropped connection or a timeout is followed by
        one identical resend at once: QuickBooks answers a repeated request id
        with its first answer, so a write that applied is reported, not
        repeated. Without one (reads), the fault is raised.
        """
        if len(items) > self.max_batch:
            raise ValueError(f"{len(items)} items; QuickBooks takes at most "
                             f"{self.max_batch} per batch call")
        params = {"requestid": request_id} if request_id else {}
        content = json.dumps({"BatchItemRequest": [dict(i) for i in items]}, default=_encode)
        for attempt in (1, 2):
            with self._batch_pace:
                self.batch_bucket.take()
            try:
                answer = self._call("POST", "/batch", "batch", params=params, content=content,
                                    headers=JSON)
                break
            except TransientError as exc:
                if request_id is None or attempt == 2 or exc.code not in ("TIMEOUT",
                                                                         "CONNECTION"):
                    raise
        responses = answer.get("BatchItemResponse") if isinstance(answer, dict) else None
        if not isinstance(responses, list):
            raise TransientError(f"quickbooks batch: no BatchItemResponse in {answer!r:.200}",
                                 code="TARGET_PROTOCOL")
        return {str(r.get("bId")): r for r in responses if isinstance(r, dict)}
