"""The Salesforce REST API client: OAuth 2.0 refresh-token flow, SOQL queries
followed through ``nextRecordsUrl``, sObject upserts by external id, sObject
Collections (upsert by external id, update by record id), the org's daily API
allocation and a request-rate bucket.

The token response carries ``instance_url``: every data call goes to
``{instance_url}/services/data/v{version}/…``. A 401 ``INVALID_SESSION_ID``
refreshes the token once and retries the call. Over the daily allocation
Salesforce answers 403 ``REQUEST_LIMIT_EXCEEDED`` (no 429, no Retry-After):
that defers work (``TransientError`` code ``QUOTA_EXHAUSTED``), it does not
fail it. Errors are JSON arrays of ``{message, errorCode, fields}``.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import httpx

from billbridge.connectors.base import (
    OutcomeKind,
    PermanentError,
    RateLimit,
    TransientError,
    classify_http,
)
from billbridge.connectors.http import VendorHttp, json_of
from billbridge.connectors.paging import PageGuard
from billbridge.connectors.ratelimit import DailyQuota

DEFAULT_VERSION = "61.0"
DEFAULT_RATE = RateLimit(25, 1, burst=25)
# Salesforce does not say when a rolling 24-hour allocation frees up again.
QUOTA_RETRY_SECONDS = 3600.0
_LIMIT_INFO = re.compile(r"api-usage=(\d+)/(\d+)")


def _read_error(response: httpx.Response) -> tuple[str, str]:
    code, text = describe(error_items(response))
    return ("TARGET_REJECTED" if code == "ERROR" else code), text


def _allocation_spent(response: httpx.Response) -> float | None:
    """Over the daily allocation Salesforce answers 403 REQUEST_LIMIT_EXCEEDED."""
    if response.status_code == 403 and \
            describe(error_items(response))[0] == "REQUEST_LIMIT_EXCEEDED":
        return QUOTA_RETRY_SECONDS
    return None


def error_items(response: httpx.Response) -> list[dict[str, Any]]:
    """Salesforce's error array ``[{message, errorCode, fields}]`` (or the
    OAuth ``{error, error_description}`` object) as a list."""
    try:
        body = response.json()
    except ValueError:
        return [{"message": response.text[:200], "errorCode": f"HTTP_{response.status_code}"}]
    if isinstance(body, dict) and "error" in body:
        return [{"message": body.get("error_description") or body["error"],
                 "errorCode": str(body["error"])}]
    if isinstance(body, list):
        return [item for item in body if isinstance(item, dict)]
    return []


def describe(items: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """(first errorCode, all messages) of an error array."""
    code = str(items[0].get("errorCode") or "ERROR") if items else "ERROR"
    text = "; ".join(f"{i.get('errorCode')}: {i.get('message')}"
                     + (f" (fields {', '.join(i['fields'])})" if i.get("fields") else "")
                     for i in items)
    return code, text


class SalesforceClient:
    def __init__(self, login_url: str, *, client_id: str = "", client_secret: str = "",
                 refresh_token: str = "", access_token: str | None = None,
                 instance_url: str | None = None, version: str = DEFAULT_VERSION,
                 rate_limit: RateLimit | None = None, quota: DailyQuota | None = None,
                 batch_size: int | None = None, timeout: float = 10.0,
                 verify: str | bool = True,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.login_url = login_url.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.access_token = access_token
        self.instance_url = instance_url.rstrip("/") if instance_url else None
        self.version = version.lstrip("v")
        self.batch_size = batch_size
        context: ssl.SSLContext | bool = ssl.create_default_context(cafile=verify) \
            if isinstance(verify, str) else verify
        # No 401 refresh here: only INVALID_SESSION_ID refreshes, and the
        # instance URL may change with it, so ``request`` does that itself.
        self.http = VendorHttp("salesforce", self.login_url,
                               rate_limit=rate_limit or DEFAULT_RATE, quota=quota,
                               read_error=_read_error,
                               observe=self._observe, quota_spent=_allocation_spent,
                               timeout=timeout, verify=context, transport=transport)

    @property
    def quota(self) -> DailyQuota:
        return self.http.quota

    @property
    def requests(self) -> int:
        """HTTP calls made, for tests and metrics."""
        return self.http.requests_sent

    def close(self) -> None:
        self.http.close()

    @property
    def data_path(self) -> str:
        return f"/services/data/v{self.version}"

    # -- auth ------------------------------------------------------------------
    def refresh(self) -> None:
        """``grant_type=refresh_token`` at ``/services/oauth2/token``."""
        if not self.refresh_token:
            raise PermanentError("salesforce: the session is invalid and no refresh token is "
                                 "configured", code="TARGET_AUTH")
        response = self.http.send("POST", f"{self.login_url}/services/oauth2/token",
                                  "token refresh",
                                  data={"grant_type": "refresh_token",
                                        "refresh_token": self.refresh_token,
                                        "client_id": self.client_id,
                                        "client_secret": self.client_secret})
        if response.status_code != 200:
            _code, text = describe(error_items(response))
            outcome = classify_http(response.status_code, response.headers)
            if outcome.kind is OutcomeKind.TRANSIENT:
                raise TransientError(f"salesforce token refresh: {text}",
                                     code=f"HTTP_{response.status_code}")
            raise PermanentError(f"salesforce token refresh: {text}", code="TARGET_AUTH")
        body = response.json()
        self.access_token = str(body["access_token"])
        self.instance_url = str(body.get("instance_url") or self.instance_url
                                or self.login_url).rstrip("/")

    # -- transport -------------------------------------------------------------
    def _observe(self, response: httpx.Response) -> None:
        found = _LIMIT_INFO.search(response.headers.get("sforce-limit-info", ""))
        if found:
            used, limit = int(found.group(1)), int(found.group(2))
            remaining = max(0, limit - used)
            # Spent: look again after a while (a rolling window frees calls over time).
            spent = remaining <= self.quota.reserve
            self.quota.observe(remaining, limit,
                               resets_in=QUOTA_RETRY_SECONDS if spent else None)

    def request(self, method: str, path: str, what: str, *,
                expected: Sequence[int] = (), **kwargs: Any) -> httpx.Response:
        """One API call (path under ``/services/data/vNN.0`` unless it starts
        with ``/services/``); raises ``TransientError``/``PermanentError`` for
        statuses outside 2xx and ``expected``. An invalid session refreshes
        the token once and the call goes again to the (new) instance URL."""
        self.quota.check(f"salesforce {what}")  # spent: defer without a request
        if self.access_token is None or self.instance_url is None:
            self.refresh()
        extra = dict(kwargs.pop("headers", None) or {})
        for attempt in (1, 2):
            base = self.instance_url or self.login_url
            url = base + (path if path.startswith("/services/") else self.data_path + path)
            headers = {"Authorization": f"Bearer {self.access_token}", **extra}
            response = self.http.request(method, url, what, expected=(401, *expected),
                                         headers=headers, **kwargs)
            if response.status_code == 401 and attempt == 1:
                code, _ = describe(error_items(response))
                if code == "INVALID_SESSION_ID":
                    self.refresh()
                    continue
            break
        if response.status_code == 401 and 401 not in expected:
            self.http.raise_for(response, what)
        return response

    # -- query -----------------------------------------------------------------
    def query_pages(self, soql: str) -> Iterator[list[dict[str, Any]]]:
        """Pages of records of one SOQL query, following ``nextRecordsUrl``
        until ``done``; a locator offered twice is an error, never a loop."""
        headers = {"Sforce-Query-Options": f"batchSize={self.batch_size}"} \
            if self.batch_size else {}
        body = json_of(self.request("GET", "/query", "query", params={"q": soql},
                                    headers=headers))
        guard = PageGuard("salesforce query")
        while True:
            yield list(body.get("records") or [])
            next_url = body.get("nextRecordsUrl")
            if body.get("done", True) or not next_url:
                return
            guard.once(next_url, f"nextRecordsUrl {next_url}")
            body = json_of(self.request("GET", str(next_url), "query more", headers=headers))

    def query_all(self, soql: str) -> list[dict[str, Any]]:
        return [record for page in self.query_pages(soql) for record in page]

    # -- sObjects ----------------------------------------------------------------
    def get(self, sobject: str, record_id: str) -> dict[str, Any]:
        body: dict[str, Any] = json_of(self.request("GET", f"/sobjects/{sobject}/{record_id}",
                                                    f"get {sobject}"))
        return body

    def update(self, sobject: str, record_id: str, fields: Mapping[str, Any]) -> None:
        """``PATCH /sobjects/{sobject}/{id}`` (204)."""
        self.request("PATCH", f"/sobjects/{sobject}/{record_id}", f"update {sobject}",
                     json=dict(fields))

    def upsert(self, sobject: str, field: str, value: str,
               fields: Mapping[str, Any]) -> tuple[int, Any]:
        """``PATCH /sobjects/{sobject}/{field}/{value}``: (status, body); 300
        (several records match) is returned, not raised."""
        response = self.request("PATCH", f"/sobjects/{sobject}/{field}/{value}",
                                f"upsert {sobject}", expected=(300,), json=dict(fields))
        body = json_of(response)
        return response.status_code, body

    def upsert_collection(self, sobject: str, field: str,
                          records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """``PATCH /composite/sobjects/{sobject}/{field}`` with ``allOrNone``
        false: one ``{id, success, errors, created}`` per record, in order."""
        body = {"allOrNone": False,
                "records": [{"attributes": {"type": sobject}, **r} for r in records]}
        answer = json_of(self.request("PATCH", f"/composite/sobjects/{sobject}/{field}",
                                      f"upsert {sobject} collection", json=body))
        if not isinstance(answer, list) or len(answer) != len(records):
            raise PermanentError(f"salesforce upsert {sobject} collection: expected "
                                 f"{len(records)} results, got {answer!r:.200}",
                                 code="TARGET_PROTOCOL")
        return [dict(item) for item in answer]

    def update_collection(self, records: Sequence[tuple[str, str, Mapping[str, Any]]],
                          ) -> list[dict[str, Any]]:
        """``PATCH /composite/sobjects`` with ``allOrNone`` false: (sObject,
        record id, fields) updated by id, at most 200 a call; one ``{id,
        success, errors}`` per record, in order. Never creates a record."""
        body = {"allOrNone": False,
                "records": [{"attributes": {"type": sobject}, "id": record_id, **fields}
                            for sobject, record_id, fields in records]}
        answer = json_of(self.request("PATCH", "/composite/sobjects", "update collection",
                                      json=body))
        if not isinstance(answer, list) or len(answer) != len(records):
            raise PermanentError(f"salesforce update collection: expected {len(records)} "
                                 f"results, got {answer!r:.200}", code="TARGET_PROTOCOL")
        return [dict(item) for item in answer]
