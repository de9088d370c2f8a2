"""HTTP client of HubSpot's CRM API: the only code here that speaks to it.

Bearer auth (private-app token or OAuth access token, refreshed once on a 401
when a refresh token is configured), a client-side token bucket at the
account's burst limit, 429s ridden out inside the client (Retry-After
honoured, a bounded number of times), and the daily allocation tracked from
``X-HubSpot-RateLimit-Daily(-Remaining)`` so that a spent day defers calls
(``TransientError`` code ``QUOTA_EXHAUSTED``) instead of failing them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from billbridge.connectors.base import PermanentError, RateLimit
from billbridge.connectors.http import VendorHttp
from billbridge.connectors.paging import PageGuard
from billbridge.connectors.ratelimit import DailyQuota, MonotonicClock, TokenBucket, rolling_window

DEFAULT_BASE_URL = "https://api.hubapi.com"
BATCH_LIMIT = 100  # inputs per batch call
SEARCH_LIMIT = 100  # results per search page
SEARCH_CAP = 10_000  # results one search query can page through
OBJECT_TYPES = frozenset({"deals", "companies", "contacts"})


def hubspot_rate_limit(requests: int = 100, per_seconds: float = 10.0) -> RateLimit:
    """HubSpot's limit is rolling: a bucket that never exceeds it in any window."""
    return rolling_window(requests, per_seconds)


def seconds_to_midnight_utc(now: float | None = None) -> float:
    """HubSpot resets the daily allocation at midnight in the account's time
    zone; UTC midnight (plus a minute) is the approximation used here."""
    current = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    midnight = (current + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - current).total_seconds() + 60.0


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _describe(response: httpx.Response) -> tuple[str, str]:
    """HubSpot's error body ``{status, message, correlationId, category, ...}``
    as (category, message)."""
    try:
        body = response.json()
    except ValueError:
        return "TARGET_REJECTED", response.text[:200]
    if not isinstance(body, dict):
        return "TARGET_REJECTED", str(body)[:200]
    message = str(body.get("message") or body)
    if body.get("category"):
        message = f"{message} [{body['category']}]"
    if body.get("correlationId"):
        message = f"{message} (correlationId {body['correlationId']})"
    return str(body.get("category") or "TARGET_REJECTED"), message


def _daily_limit_spent(response: httpx.Response) -> float | None:
    """A 429 of the DAILY policy: wait for the (approximate) reset."""
    if response.status_code != 429:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, dict) and body.get("policyName") == "DAILY":
        return seconds_to_midnight_utc()
    return None


class HubSpotClient:
    """One HubSpot account (portal): bearer auth (private-app token or OAuth,
    refreshed once on a 401), the account's burst limit and the daily
    allocation, through the shared ``VendorHttp`` transport."""

    def __init__(self, base_url: str = DEFAULT_BASE_URL, *, access_token: str,
                 refresh_token: str | None = None, client_id: str | None = None,
                 client_secret: str | None = None, rate_limit: RateLimit | None = None,
                 search_rate_limit: RateLimit | None = None,
                 clock: MonotonicClock | None = None, max_429_retries: int = 5,
                 max_retry_wait: float = 15.0, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.access_token = access_token
        self.refresh_token = refresh_token
        self.client_id = client_id
        self.client_secret = client_secret
        self.rate_limit = rate_limit or hubspot_rate_limit()
        self.http = VendorHttp(
            "HubSpot", self.base_url, rate_limit=self.rate_limit, clock=clock,
            authorise=lambda: {"Authorization": f"Bearer {self.access_token}"},
            refresh=self.refresh if self.can_refresh else None, read_error=_describe,
            observe=self._observe, quota_spent=_daily_limit_spent,
            max_429_retries=max_429_retries, max_retry_wait=max_retry_wait, timeout=timeout,
            transport=transport)
        # Search endpoints have their own limit: 4 requests/s per token (at most
        # 4 in any rolling second: a burst of 1 refilled at 3/s).
        self.search_bucket = TokenBucket(search_rate_limit or RateLimit(3, 1, burst=1),
                                         self.http.clock)
        self._search_pace = threading.Lock()

    @property
    def quota(self) -> DailyQuota:
        return self.http.quota

    @property
    def requests_sent(self) -> int:
        return self.http.requests_sent

    def close(self) -> None:
        self.http.close()

    def _observe(self, response: httpx.Response) -> None:
        remaining = _int_header(response.headers, "x-hubspot-ratelimit-daily-remaining")
        if remaining is not None:
            self.quota.observe(remaining,
                               _int_header(response.headers, "x-hubspot-ratelimit-daily"),
                               seconds_to_midnight_utc())

    def request(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        """One call's JSON body (None when empty); faults raise as ``VendorHttp`` says."""
        return self.http.json(method, path, what, **kwargs)

    # -- OAuth -----------------------------------------------------------------
    @property
    def can_refresh(self) -> bool:
        return bool(self.refresh_token and self.client_id and self.client_secret)

    def refresh(self) -> str:
        """Exchange the refresh token for a new access token (form-encoded)."""
        if not self.can_refresh:
            raise PermanentError("HubSpot OAuth: no refresh token, client id and secret "
                                 "are configured", code="TARGET_AUTH")
        form = {"grant_type": "refresh_token", "client_id": self.client_id or "",
                "client_secret": self.client_secret or "",
                "refresh_token": self.refresh_token or ""}
        response = self.http.send("POST", "/oauth/v1/token", "OAuth refresh", data=form)
        if response.status_code in (400, 401):
            _code, message = _describe(response)
            raise PermanentError(f"HubSpot OAuth refresh refused: {message}",
                                 code="TARGET_AUTH")
        self.http.raise_for(response, "OAuth refresh")
        body = response.json()
        self.access_token = str(body["access_token"])
        if body.get("refresh_token"):
            self.refresh_token = str(body["refresh_token"])
        return self.access_token

    # -- CRM calls -------------------------------------------------------------
    @staticmethod
    def _check_type(object_type: str) -> None:
        if object_type not in OBJECT_TYPES:
            raise ValueError(f"unknown HubSpot object type {object_type!r}")

    def search_modified_since(self, object_type: str, since_ms: int, *,
                              properties: Sequence[str], after: str | None = None,
                              limit: int = SEARCH_LIMIT) -> dict[str, Any]:
        """One page of ``POST /crm/v3/objects/{type}/search``: records whose
        ``hs_lastmodifieddate`` is at or after ``since_ms``, oldest first."""
        self._check_type(object_type)
        body: dict[str, Any] = {
            "filterGroups": [{"filters": [{"propertyName": "hs_lastmodifieddate",
                                           "operator": "GTE", "value": str(since_ms)}]}],
            "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
            "properties": list(properties),
            "limit": max(1, min(limit, SEARCH_LIMIT)),
        }
        if after is not None:
            body["after"] = after
        with self._search_pace:
            self.search_bucket.take()
        answer = self.request("POST", f"/crm/v3/objects/{object_type}/search",
                              f"HubSpot {object_type} search", json=body)
        return dict(answer or {})

    def get_page(self, object_type: str, *, properties: Sequence[str],
                 after: str | None = None, limit: int = 100) -> dict[str, Any]:
        self._check_type(object_type)
        params: dict[str, Any] = {"limit": limit, "properties": ",".join(properties),
                                  "archived": "false"}
        if after is not None:
            params["after"] = after
        return dict(self.request("GET", f"/crm/v3/objects/{object_type}",
                                 f"HubSpot {object_type} list", params=params) or {})

    def iter_all(self, object_type: str, *, properties: Sequence[str],
                 limit: int = 100) -> Iterator[dict[str, Any]]:
        """Every record, following ``paging.next.after``; an ``after`` offered
        twice stops with an error instead of looping."""
        guard = PageGuard(f"HubSpot {object_type} list")
        after: str | None = None
        while True:
            page = self.get_page(object_type, properties=properties, after=after, limit=limit)
            yield from page.get("results") or []
            after = next_after(page)
            if after is None:
                return
            guard.once(after, f"after={after}")

    def batch_read(self, object_type: str, ids: Iterable[str], *,
                   properties: Sequence[str]) -> list[dict[str, Any]]:
        """Records by id, 100 a call; ids HubSpot does not know (or archived)
        are absent from the answer (HubSpot says so in a 207's ``errors``)."""
        self._check_type(object_type)
        unique = list(dict.fromkeys(str(i) for i in ids))
        found: list[dict[str, Any]] = []
        for start in range(0, len(unique), BATCH_LIMIT):
            chunk = unique[start:start + BATCH_LIMIT]
            answer = self.request(
                "POST", f"/crm/v3/objects/{object_type}/batch/read",
                f"HubSpot {object_type} batch read",
                json={"inputs": [{"id": i} for i in chunk], "properties": list(properties),
                      "propertiesWithHistory": []})
            found.extend((answer or {}).get("results") or [])
        return found

    def batch_update(self, object_type: str,
                     inputs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """``POST /crm/v3/objects/{type}/batch/update`` (at most 100 inputs):
        the raw answer, 200 or 207 with ``errors`` naming ids."""
        self._check_type(object_type)
        if len(inputs) > BATCH_LIMIT:
            raise ValueError(f"at most {BATCH_LIMIT} inputs per HubSpot batch call")
        answer = self.request("POST", f"/crm/v3/objects/{object_type}/batch/update",
                              f"HubSpot {object_type} batch update",
                              json={"inputs": [dict(i) for i in inputs]})
        return dict(answer or {})

    def associated_ids(self, from_type: str, object_id: str, to_type: str) -> list[str]:
        """Ids associated to one record (associations v4), all pages; primary
        associations (type id 5 deal→company, 6 company→deal) first."""
        rows = self.associations(from_type, object_id, to_type)
        primary = [r for r in rows if any(t.get("typeId") in (5, 6)
                                          for t in r.get("associationTypes") or [])]
        rest = [r for r in rows if r not in primary]
        return list(dict.fromkeys(str(r["toObjectId"]) for r in primary + rest))

    def associations(self, from_type: str, object_id: str,
                     to_type: str) -> list[dict[str, Any]]:
        """``GET /crm/v4/objects/{from}/{id}/associations/{to}``, all pages."""
        ids: list[dict[str, Any]] = []
        guard = PageGuard(f"HubSpot {from_type} {object_id} associations")
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 500}
            if after is not None:
                params["after"] = after
            page = self.request("GET", f"/crm/v4/objects/{from_type}/{object_id}/associations/"
                                f"{to_type}", f"HubSpot {from_type} {object_id} associations",
                                params=params) or {}
            ids.extend(page.get("results") or [])
            after = next_after(page)
            if after is None:
                return ids
            guard.once(after, f"after={after}")


def next_after(page: Mapping[str, Any]) -> str | None:
    after = ((page.get("paging") or {}).get("next") or {}).get("after")
    return None if after in (None, "") else str(after)
