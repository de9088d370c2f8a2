"""HTTP client of SAP S/4HANA Cloud's OData 2.0 APIs
(``/sap/opu/odata/sap/<SERVICE>/``): the only code here that speaks to S/4.

SAP's own parts: the communication arrangement's credentials (the
communication user's Basic auth, or OAuth 2.0 client credentials), the CSRF
token every change needs (``x-csrf-token: Fetch`` on a read, then that token
and the session's cookies on each change; a 403 "CSRF token validation
failed" fetches it again once), OData 2.0 answers (``{"d": {"results",
"__next"}}``) and ``$batch`` with change sets. The ``$batch`` codec, error
bodies and next-link paging with loop detection are the shared
``connectors/odata.py``. SAP documents no rate limit, batch maximum or page
maximum (more-vendors.md section 6): each is a setting with a default.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from billbridge.connectors.base import PermanentError, RateLimit, TransientError
from billbridge.connectors.entra import EntraToken
from billbridge.connectors.http import VendorHttp
from billbridge.connectors.odata import (
    ChangeSetResult,
    Operation,
    decode_batch,
    describe,
    encode_batch,
    json_answer,
)
from billbridge.connectors.paging import PageGuard
from billbridge.connectors.ratelimit import MonotonicClock, rolling_window

ODATA_ROOT = "/sap/opu/odata/sap"
BUSINESS_PARTNER = "API_BUSINESS_PARTNER"
ENTERPRISE_PROJECT = "API_ENTERPRISE_PROJECT_SRV;v=0002"
TIMESHEET = "API_MANAGE_WORKFORCE_TIMESHEET"
DEBIT_MEMO_REQUEST = "API_DEBIT_MEMO_REQUEST_SRV"
BILLING_DOCUMENT = "API_BILLING_DOCUMENT_SRV"
CLEARING = "API_OPLACCTGDOCITEMCUBE_SRV"
CSRF_HEADER = "x-csrf-token"
SERVICE = "SAP S/4HANA"
BATCH_LIMIT = 1000  # operations per $batch: unverified, a setting (batch_size)
PAGE_SIZE = 1000  # $top per read: unverified, a setting (page_size)


def sap_rate_limit(requests: int = 600, per_seconds: float = 60.0) -> RateLimit:
    """No SAP number is documented: a default of 10 requests a second."""
    return rolling_window(requests, per_seconds)


def csrf_required(response: httpx.Response) -> bool:
    """SAP's answer to a change without a valid token: 403 with
    ``x-csrf-token: Required`` ([CSRF] in more-vendors.md section 6)."""
    return response.status_code == 403 and \
        response.headers.get(CSRF_HEADER, "").lower() == "required"


class CsrfToken:
    """The session's CSRF token, fetched on first need and again when SAP
    says it is no longer valid. The session cookies that bind it ride in the
    transport's cookie jar."""

    def __init__(self, http: VendorHttp, fetch_path: str) -> None:
        self.http, self.fetch_path = http, fetch_path
        self.value: str | None = None
        self.fetched = 0
        self._lock = threading.Lock()

    def header(self) -> dict[str, str]:
        return {CSRF_HEADER: self.value} if self.value else {}

    def ensure(self) -> None:
        if self.value is None:
            self.renew(None)

    def renew(self, stale: str | None) -> None:
        """Fetch a token, unless another thread already replaced ``stale``."""
        with self._lock:
            if self.value is not None and self.value != stale:
                return
            response = self.http.send("GET", self.fetch_path, "CSRF token fetch",
                                      headers={CSRF_HEADER: "Fetch"})
            token = response.headers.get(CSRF_HEADER, "")
            if response.status_code in (401, 403):
                raise PermanentError(
                    f"{SERVICE} CSRF token fetch: HTTP {response.status_code}: check the "
                    "communication user's credentials and that the communication arrangement "
                    "grants this service", code="TARGET_AUTH")
            if response.status_code >= 300 or not token or token.lower() == "required":
                raise TransientError(f"{SERVICE} CSRF token fetch: HTTP "
                                     f"{response.status_code} without a token",
                                     code=f"HTTP_{response.status_code}")
            self.value = token
            self.fetched += 1


class SapClient:
    """One S/4HANA Cloud tenant as one communication user (Basic auth) or
    one OAuth client (when ``client_id`` is given): its CSRF token, its
    limits and its paging. Thread-safe: the target's lanes and the status
    source share it."""

    def __init__(self, base_url: str, *, user: str = "", password: str = "",
                 client_id: str = "", client_secret: str = "", token_url: str = "",
                 scope: str = "", rate_limit: RateLimit | None = None, concurrency: int = 4,
                 batch_limit: int = BATCH_LIMIT, page_size: int = PAGE_SIZE,
                 clock: MonotonicClock | None = None, timeout: float = 30.0,
                 max_429_retries: int = 5, max_retry_wait: float = 60.0, verify: Any = True,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.rate_limit = rate_limit or sap_rate_limit()
        self.batch_limit, self.page_size = max(1, batch_limit), max(1, page_size)
        self.batches_sent = 0
        self._basic = None if client_id else "Basic " + base64.b64encode(
            f"{user}:{password}".encode()).decode()
        self.oauth = None if not client_id else EntraToken(
            SERVICE, token_url, client_id=client_id, client_secret=client_secret, scope=scope,
            now=lambda: self.http.clock.monotonic(), timeout=timeout, verify=verify,
            transport=transport, hint=" (the communication arrangement's OAuth client)")
        self._last = threading.local()
        self.http = VendorHttp(
            SERVICE, self.base_url + ODATA_ROOT, rate_limit=self.rate_limit, clock=clock,
            authorise=self._authorise, refresh=self._refresh, renew_on=self._renew_on,
            read_error=describe, concurrency=concurrency, max_429_retries=max_429_retries,
            max_retry_wait=max_retry_wait, timeout=timeout, verify=verify,
            headers={"Accept": "application/json"}, transport=transport)
        self.csrf = CsrfToken(self.http, f"{BUSINESS_PARTNER}/")

    @property
    def requests_sent(self) -> int:
        return self.http.requests_sent

    def close(self) -> None:
        self.http.close()
        if self.oauth is not None:
            self.oauth.close()

    # -- credentials -----------------------------------------------------------------
    def _authorise(self) -> dict[str, str]:
        if self.oauth is not None:
            auth = self.oauth.header()
        else:
            auth = {"Authorization": str(self._basic)}
        return {**auth, **self.csrf.header()}

    def _renew_on(self, response: httpx.Response) -> bool:
        self._last.status = response.status_code
        self._last.token = response.request.headers.get(CSRF_HEADER)
        return response.status_code == 401 or csrf_required(response)

    def _refresh(self) -> None:
        """After a 401 the OAuth token (and with it the session) is fetched
        again; after a refused CSRF token, the token."""
        if getattr(self._last, "status", None) == 401 and self.oauth is not None:
            self.oauth.renew()
        self.csrf.renew(getattr(self._last, "token", None))

    # -- reads ---------------------------------------------------------------------
    def page(self, url: str, what: str, *, params: Mapping[str, str] | None = None
             ) -> dict[str, Any]:
        """One page, ``{"results": [...], "__next": ...}``: ``url`` is
        ``SERVICE/EntitySet`` (with ``params``) or a ``__next`` link as SAP
        gave it (sent unchanged)."""
        body = json_answer(self.http.request("GET", url, what,
                                             params=dict(params or {}) or None), SERVICE, what)
        inner = body.get("d") if isinstance(body, dict) else None
        if not isinstance(inner, dict) or not isinstance(inner.get("results"), list):
            raise TransientError(f"{SERVICE} {what}: the answer has no d.results list",
                                 code="BAD_ANSWER")
        return inner

    def rows(self, service: str, entity: str, what: str, *,
             params: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Every row of a query, in windows of ``page_size`` by ``$top`` and
        ``$skip``, following SAP's ``__next`` inside a window when it pages
        on its own; a link offered twice stops with ``PAGINATION_LOOP``. The
        walk ends at the ``$inlinecount`` SAP states, so a window SAP cuts
        short of ``$top`` without a ``__next`` does not end it early."""
        guard = PageGuard(f"{SERVICE} {what}")
        found: list[dict[str, Any]] = []
        total: int | None = None
        while True:
            body = self.page(f"{service}/{entity}", what, params={
                **(params or {}), "$top": str(self.page_size), "$skip": str(len(found)),
                "$inlinecount": "allpages"})
            if str(body.get("__count", "")).isdigit():
                total = int(body["__count"])
            window = 0
            while True:
                rows = [dict(r) for r in body["results"] if isinstance(r, dict)]
                found += rows
                window += len(rows)
                link = body.get("__next")
                if not link or not rows:
                    break
                guard.once(str(link), f"the __next link {str(link)[:120]}", repeat="offered")
                body = self.page(str(link), what)
            if window == 0 or (len(found) >= total if total is not None
                               else window < self.page_size):
                return found

    # -- changes -------------------------------------------------------------------
    def batch(self, service: str, changesets: Sequence[Sequence[Operation]]
              ) -> list[ChangeSetResult]:
        """``POST SERVICE/$batch`` of change sets (at most ``batch_limit``
        operations in all) with the CSRF token; each change set's answer."""
        total = sum(len(c) for c in changesets)
        if total > self.batch_limit:
            raise ValueError(f"at most {self.batch_limit} operations per {SERVICE} $batch, "
                             f"not {total}")
        self.csrf.ensure()
        content_type, body, ids = encode_batch("", changesets, entry_type="application/json")
        self.batches_sent += 1
        response = self.http.request(
            "POST", f"{service}/$batch", f"{service} $batch of {len(changesets)} change sets",
            content=body, headers={"Content-Type": content_type}, expected=(403,))
        if response.status_code == 403:
            if not csrf_required(response):
                self.http.raise_for(response, f"{service} $batch")
            _code, message = describe(response)
            raise TransientError(f"{SERVICE} {service} $batch: the CSRF token was refused "
                                 f"again after a fresh one was fetched: {message}",
                                 code="CSRF_REFUSED")
        return decode_batch(f"{SERVICE} {service}", response.headers.get("content-type", ""),
                            response.text, len(changesets), ids)


__all__ = ["BILLING_DOCUMENT", "BUSINESS_PARTNER", "CLEARING", "DEBIT_MEMO_REQUEST",
           "ENTERPRISE_PROJECT", "ODATA_ROOT", "TIMESHEET", "CsrfToken", "Operation",
           "SapClient", "csrf_required", "sap_rate_limit"]
