"""HTTP client of Xero's accounting API: the only code here that speaks to it.

It composes the shared ``VendorHttp`` and adds what is Xero's own: OAuth 2.0
(30-minute access tokens refreshed at the identity server before they lapse
or on a 401; refresh tokens rotate, so each refresh keeps the new one), the
``xero-tenant-id`` header, the tenant's limits (60 calls a minute paced by a
token bucket, 5 in flight, the day's 5,000 read from ``X-DayLimit-Remaining``;
a 429 whose ``X-Rate-Limit-Problem`` is ``day`` defers work until Retry-After
instead of retrying), Xero's error bodies, and JSON numbers read as Decimal.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import httpx

from billbridge.connectors.base import PermanentError, RateLimit, TransientError, parse_retry_after
from billbridge.connectors.http import VendorHttp, loads
from billbridge.connectors.ratelimit import (
    DailyQuota,
    MonotonicClock,
    RealClock,
)
from billbridge.connectors.tracing import HOOKS

DEFAULT_BASE_URL = "https://api.xero.com/api.xro/2.0"
IDENTITY_TOKEN_URL = "https://identity.xero.com/connect/token"
BATCH_LIMIT = 50  # Xero's recommended elements per request (the hard limit is 3.5 MB)
PAGE_SIZE = 100
REFRESH_MARGIN = 60.0  # refresh this many seconds before the access token lapses


def xero_rate_limit(per_minute: int = 60, concurrency: int = 5) -> RateLimit:
    """Never more than ``per_minute`` calls in any rolling minute: a burst of
    the concurrency limit, refilled at the rest of the minute's allowance."""
    burst = max(1, min(concurrency, per_minute // 2))
    return RateLimit(per_minute - burst, 60.0, burst=burst)


def _day_spent(response: httpx.Response) -> float | None:
    """A 429 whose ``X-Rate-Limit-Problem`` is the day's limit: wait it out."""
    problem = response.headers.get("x-rate-limit-problem", "").lower()
    if response.status_code == 429 and problem in ("day", "daily"):
        return parse_retry_after(response.headers.get("retry-after")) or 3600.0
    return None


def read_error(response: httpx.Response) -> tuple[str, str]:
    """(code, message) from Xero's error bodies: a ValidationException with
    ``Elements[].ValidationErrors[].Message``, a ProblemDetails
    ``{Title, Detail}``, the identity server's ``{error}``, or plain text."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP_{response.status_code}", response.text[:200] or response.reason_phrase
    if not isinstance(body, dict):
        return f"HTTP_{response.status_code}", str(body)[:200]
    if body.get("Type") == "ValidationException" or "Elements" in body:
        messages = [str(e.get("Message")) for element in body.get("Elements") or []
                    for e in element.get("ValidationErrors") or []]
        return "ValidationException", "; ".join(messages) or str(body.get("Message"))
    if body.get("Title") or body.get("Detail"):
        return (str(body.get("Title") or f"HTTP_{response.status_code}").replace(" ", ""),
                f"{body.get('Title')}: {body.get('Detail')}")
    if body.get("error"):
        return str(body["error"]), str(body.get("error_description") or body["error"])
    return f"HTTP_{response.status_code}", str(body)[:200]


def to_wire(value: Any) -> Any:
    """A record for Xero's JSON: Decimal as a JSON number. Xero's numbers are
    doubles; a figure a double cannot hold exactly is refused, never rounded."""
    if isinstance(value, Mapping):
        return {k: to_wire(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_wire(v) for v in value]
    if isinstance(value, Decimal):
        number = float(value)
        if Decimal(repr(number)) != value:
            raise ValueError(f"{value} cannot be sent as a JSON number without rounding")
        return number
    return value


def call_key(method: str, path: str, keys: Iterable[str]) -> str:
    """The Idempotency-Key of one write: the same commands to the same
    endpoint give the same key, so Xero answers a repeat with its first answer."""
    material = f"{method} {path}\n" + "\n".join(sorted(keys))
    return "bb-" + hashlib.sha256(material.encode()).hexdigest()[:61]


def identity(record: Mapping[str, Any], field: str) -> str:
    """A Xero id from an answer; its absence is Xero's protocol broken, said
    as such rather than a KeyError."""
    value = record.get(field)
    if not value:
        raise PermanentError(f"xero: an answer has no {field}: {str(record)[:200]}",
                             code="TARGET_PROTOCOL")
    return str(value)


def quoted(value: str) -> str:
    """A string literal for Xero's ``where`` filter."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class XeroClient:
    """One Xero organisation (tenant), shared by the connection's target and source."""

    def __init__(self, base_url: str = DEFAULT_BASE_URL, *, tenant_id: str,
                 access_token: str = "", refresh_token: str = "", client_id: str = "",
                 client_secret: str = "", token_url: str | None = None,
                 rate_limit: RateLimit | None = None, concurrency: int = 5,
                 clock: MonotonicClock | None = None, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None,
                 on_tokens: Callable[[str, str], None] | None = None) -> None:
        if not tenant_id:
            raise ValueError("xero: a tenant_id is required (the organisation's id from "
                             "GET https://api.xero.com/connections)")
        self.tenant_id = tenant_id
        self.access_token = access_token
        self.refresh_token = refresh_token
        self.client_id, self.client_secret = client_id, client_secret
        self.token_url = token_url or token_url_for(base_url)
        self.on_tokens = on_tokens
        self.clock = clock or RealClock()
        self.rate_limit = rate_limit or xero_rate_limit(concurrency=concurrency)
        self.expires_at: float | None = None  # unknown until we refresh ourselves
        self.writes = 0  # write requests sent (answered or not), for the target
        self._refreshing = threading.Lock()
        self.http = VendorHttp("xero", base_url, rate_limit=self.rate_limit,
                               authorise=self._authorise,
                               refresh=self.refresh if self.can_refresh else None,
                               read_error=read_error, observe=self._observe,
                               quota_spent=_day_spent,
                               quota=DailyQuota(self.clock), concurrency=concurrency,
                               clock=self.clock, max_retry_wait=60.0, timeout=timeout,
                               transport=transport, headers={"Accept": "application/json"})
        self._identity = httpx.Client(timeout=timeout, transport=transport, event_hooks=HOOKS)

    def close(self) -> None:
        self.http.close()
        self._identity.close()

    # -- OAuth 2.0 -------------------------------------------------------------------
    @property
    def can_refresh(self) -> bool:
        return bool(self.refresh_token and self.client_id and self.client_secret)

    def _authorise(self) -> dict[str, str]:
        if self.expires_at is not None and self.can_refresh and \
                self.clock.monotonic() >= self.expires_at - REFRESH_MARGIN:
            self.refresh()
        return {"Authorization": f"Bearer {self.access_token}",
                "xero-tenant-id": self.tenant_id}

    def refresh(self) -> None:
        """``grant_type=refresh_token`` at the identity server. The answer
        carries a new refresh token; the old one stops working, so it is
        kept (and handed to ``on_tokens`` for safe keeping)."""
        if not self.can_refresh:
            raise PermanentError("xero: the access token was refused and no refresh token, "
                                 "client id and secret are configured", code="TARGET_AUTH")
        with self._refreshing:
            try:
                response = self._identity.post(
                    self.token_url, auth=(self.client_id, self.client_secret),
                    data={"grant_type": "refresh_token", "refresh_token": self.refresh_token})
            except httpx.TransportError as exc:
                raise TransientError(f"xero token refresh: {exc.__class__.__name__}: {exc}",
                                     code="CONNECTION") from None
            if response.status_code >= 500 or response.status_code == 429:
                raise TransientError(f"xero token refresh: HTTP {response.status_code}",
                                     code=f"HTTP_{response.status_code}")
            if response.status_code != 200:
                code, message = read_error(response)
                raise PermanentError(f"xero token refresh refused ({code}: {message}): the "
                                     "refresh token was used elsewhere, revoked or unused for "
                                     "60 days; reconnect the organisation", code="TARGET_AUTH")
            body = response.json()
            self.access_token = str(body["access_token"])
            self.refresh_token = str(body.get("refresh_token") or self.refresh_token)
            self.expires_at = self.clock.monotonic() + float(body.get("expires_in", 1800))
        if self.on_tokens is not None:
            self.on_tokens(self.access_token, self.refresh_token)

    # -- limits ----------------------------------------------------------------------
    def _observe(self, response: httpx.Response) -> None:
        remaining = response.headers.get("x-daylimit-remaining")
        if remaining is not None and remaining.isdigit():
            self.http.quota.observe(int(remaining))

    # -- calls -----------------------------------------------------------------------
    def call(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        """One call; its JSON answer with numbers as Decimal (None when empty).

        An answer that cannot be read is transient, not permanent: to a write
        it is as good as lost, and the resend must look for its markers."""
        if "json" in kwargs:
            kwargs["json"] = to_wire(kwargs["json"])
        response = self.http.request(method, path, what, **kwargs)
        if not response.content:
            return None
        try:
            return loads(response.content)
        except ValueError:
            raise TransientError(f"xero {what}: the answer is not JSON: "
                                 f"{response.text[:200]!r}", code="TARGET_PROTOCOL") from None

    def write(self, method: str, path: str, collection: str,
              records: Sequence[Mapping[str, Any]], *, idempotency_key: str
              ) -> list[dict[str, Any]]:
        """PUT (create) or POST (create or update) ``records`` in one call with
        per-element results (``summarizeErrors=false``), in the order sent."""
        self.writes += 1
        answer = self.call(method, path, f"{method} {collection}",
                           params={"summarizeErrors": "false"},
                           headers={"Idempotency-Key": idempotency_key},
                           json={collection: list(records)})
        elements = (answer or {}).get(collection) if isinstance(answer, dict) else None
        if not isinstance(elements, list) or len(elements) != len(records) or \
                not all(isinstance(e, dict) for e in elements):
            raise TransientError(f"xero {method} {collection}: expected {len(records)} "
                                 f"elements, got {str(answer)[:200]}", code="TARGET_PROTOCOL")
        return [dict(e) for e in elements]

    def records(self, collection: str, what: str, *, path: str | None = None,
                params: Mapping[str, Any] | None = None,
                since: datetime | None = None) -> list[dict[str, Any]]:
        """``GET /{collection}`` (or ``path``) with filters; ``since`` is
        If-Modified-Since, to the second, in UTC."""
        headers = {"If-Modified-Since": since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
                   } if since else {}
        answer = self.call("GET", path or f"/{collection}", what, params=dict(params or {}),
                           headers=headers)
        found = answer.get(collection) if isinstance(answer, dict) else None
        return [dict(r) for r in found or [] if isinstance(r, dict)]

    def base_currency(self) -> str:
        found = self.records("Organisations", "organisation", path="/Organisation")
        return identity(found[0] if found else {}, "BaseCurrency")


def token_url_for(base_url: str) -> str:
    """Xero's identity server for Xero's API; the same host for an emulator."""
    parts = urlsplit(base_url)
    if parts.hostname == "api.xero.com":
        return IDENTITY_TOKEN_URL
    return f"{parts.scheme}://{parts.netloc}/connect/token"
