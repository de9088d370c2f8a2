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

from billbridge.connectors.base import (
    OutcomeKind,
    PermanentError,
    RateLimit,
    TransientError,
    classify_http,
    parse_retry_after,
)
from billbridge.connectors.ratelimit import (
    QUOTA_EXHAUSTED,
    DailyQuota,
    MonotonicClock,
    RealClock,
    TokenBucket,
    rolling_window,
)
from billbridge.connectors.tracing import HOOKS

DEFAULT_BASE_URL = "https://api.hubapi.com"
USER_AGENT = "billbridge/0.1 (+https://github.com/billbridge)"
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


def _describe(response: httpx.Response) -> tuple[str, dict[str, Any]]:
    """HubSpot's error body: ``{status, message, correlationId, category, ...}``."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200], {}
    if not isinstance(body, dict):
        return str(body)[:200], {}
    message = str(body.get("message") or body)
    if body.get("category"):
        message = f"{message} [{body['category']}]"
    if body.get("correlationId"):
        message = f"{message} (correlationId {body['correlationId']})"
    return message, body


class HubSpotClient:
    """One HubSpot account (portal)."""

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
        self.clock = clock or RealClock()
        self.bucket = TokenBucket(self.rate_limit, self.clock)
        # Search endpoints have their own limit: 4 requests/s per token (at most
        # 4 in any rolling second: a burst of 1 refilled at 3/s).
        self.search_bucket = TokenBucket(search_rate_limit or RateLimit(3, 1, burst=1),
                                         self.clock)
        self.quota = DailyQuota(self.clock)
        self.max_429_retries = max_429_retries
        self.max_retry_wait = max_retry_wait
        self.requests_sent = 0
        self._pace = threading.Lock()  # one client may serve a poller and webhook threads
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout,
                                    transport=transport, headers={"User-Agent": USER_AGENT},
                                    event_hooks=HOOKS)

    def close(self) -> None:
        self._client.close()

    # -- transport -------------------------------------------------------------
    def _send(self, method: str, path: str, what: str, **kwargs: Any) -> httpx.Response:
        with self._pace:
            self.quota.check(what)
            self.bucket.take()
            self.requests_sent += 1
        headers = {"Authorization": f"Bearer {self.access_token}"}
        try:
            response = self._client.request(method, path, headers=headers, **kwargs)
        except httpx.TimeoutException as exc:
            raise TransientError(f"{what}: timed out ({exc.__class__.__name__})",
                                 code="TIMEOUT") from None
        except httpx.TransportError as exc:
            raise TransientError(f"{what}: {exc.__class__.__name__}: {exc}",
                                 code="CONNECTION") from None
        remaining = _int_header(response.headers, "x-hubspot-ratelimit-daily-remaining")
        if remaining is not None:
            self.quota.observe(remaining,
                               _int_header(response.headers, "x-hubspot-ratelimit-daily"),
                               seconds_to_midnight_utc())
        return response

    def request(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        """Send one call; return its JSON body (None when empty).

        A 401 refreshes the OAuth token once and retries; a 429 waits its
        Retry-After and retries up to ``max_429_retries`` times, then raises
        ``TransientError``; the daily cap raises ``QUOTA_EXHAUSTED``.
        """
        refreshed = False
        rate_limited = 0
        while True:
            response = self._send(method, path, what, **kwargs)
            status = response.status_code
            if status == 401 and not refreshed and self.can_refresh:
                self.refresh()
                refreshed = True
                continue
            if status == 429:
                message, body = _describe(response)
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                if body.get("policyName") == "DAILY":
                    wait = seconds_to_midnight_utc()
                    self.quota.observe(0, None, wait)
                    raise TransientError(f"{what}: the daily API limit is spent: {message}",
                                         code=QUOTA_EXHAUSTED, retry_after=wait)
                self.bucket.drain()
                if rate_limited < self.max_429_retries:
                    rate_limited += 1
                    self.clock.sleep(min(self.max_retry_wait,
                                         retry_after if retry_after is not None else 1.0))
                    continue
                raise TransientError(f"{what}: HTTP 429 after {rate_limited} retries: {message}",
                                     code="HTTP_429", retry_after=retry_after)
            self._raise_for(response, what)
            if not response.content:
                return None
            return response.json()

    @staticmethod
    def _raise_for(response: httpx.Response, what: str) -> None:
        outcome = classify_http(response.status_code, response.headers)
        if outcome.kind is OutcomeKind.SUCCESS:
            return
        message, body = _describe(response)
        text = f"{what}: HTTP {response.status_code}: {message}"
        if outcome.kind is OutcomeKind.TRANSIENT:
            raise TransientError(text, code=f"HTTP_{response.status_code}",
                                 retry_after=outcome.retry_after)
        if outcome.kind is OutcomeKind.CONFIGURATION:
            raise PermanentError(text, code="TARGET_AUTH")
        raise PermanentError(text, code=str(body.get("category") or "TARGET_REJECTED"))

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
        try:
            response = self._client.post("/oauth/v1/token", data=form)
        except httpx.TransportError as exc:
            raise TransientError(f"HubSpot OAuth refresh: {exc.__class__.__name__}: {exc}",
                                 code="CONNECTION") from None
        if response.status_code in (400, 401):
            message, _ = _describe(response)
            raise PermanentError(f"HubSpot OAuth refresh refused: {message}",
                                 code="TARGET_AUTH")
        self._raise_for(response, "HubSpot OAuth refresh")
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
        with self._pace:
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
        seen: set[str] = set()
        after: str | None = None
        while True:
            page = self.get_page(object_type, properties=properties, after=after, limit=limit)
            yield from page.get("results") or []
            after = next_after(page)
            if after is None:
                return
            if after in seen:
                raise PermanentError(f"HubSpot {object_type} list: after={after} was offered "
                                     "twice; stopping instead of looping",
                                     code="PAGINATION_LOOP")
            seen.add(after)

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
        seen: set[str] = set()
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
            if after in seen:
                raise PermanentError("HubSpot associations: after offered twice; stopping "
                                     "instead of looping", code="PAGINATION_LOOP")
            seen.add(after)


def next_after(page: Mapping[str, Any]) -> str | None:
    after = ((page.get("paging") or {}).get("next") or {}).get("after")
    return None if after in (None, "") else str(after)
