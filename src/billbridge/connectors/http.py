"""The HTTP transport every vendor client shares: one account's pacing (token
bucket, concurrency cap, daily quota), its auth header with one refresh on a
401, 429s ridden out inside the client with ``Retry-After`` honoured, and
every other outcome turned into ``TransientError`` or ``PermanentError``
through the one table in ``connectors.base``.

A vendor client composes a ``VendorHttp`` and says only what is its own:
how to authorise a request, how to refresh, how to read the vendor's error
body and which response headers carry its quota.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
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
)
from billbridge.connectors.tracing import HOOKS

USER_AGENT = "billbridge/0.1 (+https://github.com/billbridge)"

ErrorReader = Callable[[httpx.Response], tuple[str, str]]
"""(vendor error code, readable message) from an error response."""

QuotaReader = Callable[[httpx.Response], float | None]
"""Seconds until the daily allocation resets, when a response says it is
spent (HubSpot's DAILY 429, Salesforce's REQUEST_LIMIT_EXCEEDED, Xero's
``X-Rate-Limit-Problem: day``); None for any other answer."""


def loads(text: str | bytes) -> Any:
    """JSON with every fraction read as a ``Decimal``: a vendor's amounts and
    hours reach the hub with every digit they were sent with, never as floats."""
    return json.loads(text, parse_float=Decimal)


def json_of(response: httpx.Response) -> Any:
    """A vendor answer's JSON body through ``loads`` (None when it is empty).
    Every read of a vendor's records goes through it, not ``response.json()``."""
    return loads(response.content) if response.content else None


def error_object(response: httpx.Response) -> dict[str, Any] | tuple[str, str]:
    """An error answer's JSON object, for the vendor's reader to pick apart;
    or, when it is not one, (``HTTP_<status>``, the start of what it said)."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP_{response.status_code}", response.text[:200]
    if not isinstance(body, dict):
        return f"HTTP_{response.status_code}", str(body)[:200]
    return body


def read_error(response: httpx.Response) -> tuple[str, str]:
    """A reasonable default: ``{"error": {"code", "message"}}``, ``{"message"}``
    or the start of the body."""
    body = error_object(response)
    if isinstance(body, tuple):
        return body
    inner = body.get("error")
    if isinstance(inner, dict):
        return (str(inner.get("code") or f"HTTP_{response.status_code}"),
                str(inner.get("message") or inner))
    if body.get("message"):
        return str(body.get("code") or f"HTTP_{response.status_code}"), str(body["message"])
    return f"HTTP_{response.status_code}", str(body)[:200]


class VendorHttp:
    """One vendor account over httpx. Thread-safe: a poller, a dispatcher and
    webhook threads may share it, and together keep within its limits."""

    def __init__(self, vendor: str, base_url: str, *, rate_limit: RateLimit,
                 authorise: Callable[[], Mapping[str, str]] | None = None,
                 refresh: Callable[[], object] | None = None,
                 renew_on: Callable[[httpx.Response], bool] | None = None,
                 read_error: ErrorReader = read_error,
                 observe: Callable[[httpx.Response], None] | None = None,
                 quota_spent: QuotaReader | None = None,
                 quota: DailyQuota | None = None, concurrency: int | None = None,
                 clock: MonotonicClock | None = None, max_429_retries: int = 5,
                 max_retry_wait: float = 15.0, timeout: float = 10.0,
                 verify: Any = True, headers: Mapping[str, str] | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.vendor = vendor
        self.base_url = base_url.rstrip("/")
        self.rate_limit = rate_limit
        self.clock = clock or RealClock()
        self.bucket = TokenBucket(rate_limit, self.clock)
        self.quota = quota or DailyQuota(self.clock)
        self.authorise = authorise or (lambda: {})
        self.refresh = refresh
        # Which answers mean the credentials must be fetched again (one
        # refresh, then the call once more): a 401, unless the vendor says more
        # (SAP's 403 "CSRF token validation failed").
        self.renew_on = renew_on or (lambda response: response.status_code == 401)
        self.read_error = read_error
        self.observe = observe
        self.quota_spent = quota_spent
        self.max_429_retries = max_429_retries
        self.max_retry_wait = max_retry_wait
        self.requests_sent = 0  # every HTTP call made, for tests and benchmarks
        self._pace = threading.Lock()
        self._slots = threading.BoundedSemaphore(concurrency) if concurrency else None
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout, verify=verify,
                                    transport=transport, event_hooks=HOOKS,
                                    headers={"User-Agent": USER_AGENT, **(headers or {})})

    def close(self) -> None:
        self._client.close()

    def send(self, method: str, url: str, what: str, **kwargs: Any) -> httpx.Response:
        """One paced call with no status handling; transport faults raise
        ``TransientError`` (a dropped connection may have applied a write)."""
        with self._pace:
            self.quota.check(f"{self.vendor} {what}")
            self.bucket.take()
            self.requests_sent += 1
        headers = {**self.authorise(), **(kwargs.pop("headers", None) or {})}
        if self._slots is not None:
            self._slots.acquire()
        try:
            response = self._client.request(method, url, headers=headers, **kwargs)
        except httpx.TimeoutException as exc:
            raise TransientError(f"{self.vendor} {what}: timed out "
                                 f"({exc.__class__.__name__})", code="TIMEOUT") from None
        except httpx.TransportError as exc:
            raise TransientError(f"{self.vendor} {what}: {exc.__class__.__name__}: {exc}",
                                 code="CONNECTION") from None
        finally:
            if self._slots is not None:
                self._slots.release()
        if self.observe is not None:
            self.observe(response)
        return response

    def request(self, method: str, url: str, what: str, *, expected: Sequence[int] = (),
                **kwargs: Any) -> httpx.Response:
        """A call whose answer is a success (2xx or one of ``expected``).

        A 401 (or what ``renew_on`` names) refreshes the credentials once
        (when the vendor can) and retries;
        an answer that says the day's allocation is spent defers the work
        (``TransientError`` code ``QUOTA_EXHAUSTED``, retry after the reset);
        a 429 waits its ``Retry-After`` and retries up to ``max_429_retries``
        times, then raises ``TransientError``; any other failure raises.
        """
        refreshed = False
        rate_limited = 0
        while True:
            response = self.send(method, url, what, **kwargs)
            status = response.status_code
            wait = self.quota_spent(response) if self.quota_spent is not None else None
            if wait is not None:
                self.quota.observe(0, None, wait)
                _code, message = self.read_error(response)
                raise TransientError(f"{self.vendor} {what}: the daily API limit is spent; "
                                     f"waiting {wait:.0f} s for it to reset: {message}",
                                     code=QUOTA_EXHAUSTED, retry_after=wait)
            if not refreshed and self.refresh is not None and self.renew_on(response):
                self.refresh()
                refreshed = True
                continue
            if status == 429:
                self.bucket.drain()
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                if rate_limited < self.max_429_retries:
                    rate_limited += 1
                    self.clock.sleep(min(self.max_retry_wait,
                                         1.0 if retry_after is None else retry_after))
                    continue
                _code, message = self.read_error(response)
                raise TransientError(f"{self.vendor} {what}: HTTP 429 after {rate_limited} "
                                     f"retries: {message}", code="HTTP_429",
                                     retry_after=retry_after)
            if 200 <= status < 300 or status in expected:
                return response
            self.raise_for(response, what)

    def json(self, method: str, url: str, what: str, **kwargs: Any) -> Any:
        """``request`` and its JSON body, fractions as Decimal (None when the
        answer is empty)."""
        return json_of(self.request(method, url, what, **kwargs))

    def raise_for(self, response: httpx.Response, what: str) -> None:
        outcome = classify_http(response.status_code, response.headers)
        if outcome.kind is OutcomeKind.SUCCESS:
            return
        code, message = self.read_error(response)
        text = f"{self.vendor} {what}: HTTP {response.status_code}: {message}"
        if outcome.kind is OutcomeKind.TRANSIENT:
            raise TransientError(text, code=f"HTTP_{response.status_code}",
                                 retry_after=outcome.retry_after)
        if outcome.kind is OutcomeKind.CONFIGURATION:
            raise PermanentError(text, code="TARGET_AUTH")
        raise PermanentError(text, code=code or "TARGET_REJECTED")
