"""HTTP client of Harvest's API v2: the only code here that speaks to it.

Harvest authenticates a personal access token (``Authorization: Bearer``)
together with the account it acts on (``Harvest-Account-Id``) and wants a
``User-Agent`` naming the application. The documented limit is 100 requests
per 15 seconds per token; over it Harvest answers 429 with ``Retry-After``,
which the shared transport rides out. Lists are paginated: the client follows
``links.next`` as Harvest asks ("use the links, do not build them"), whether
the link carries a page number (time entries, expenses) or a cursor (clients,
projects, tasks, users), and refuses a link that leaves the API's host.
"""

from __future__ import annotations

import email.utils
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from billbridge.connectors.base import PermanentError, RateLimit
from billbridge.connectors.http import USER_AGENT, VendorHttp, error_object, json_of
from billbridge.connectors.paging import PageGuard
from billbridge.connectors.ratelimit import MonotonicClock, rolling_window

DEFAULT_BASE_URL = "https://api.harvestapp.com/v2"
PER_PAGE_MAX = 2000  # documented range 1-2000 (default 2000); more answers 422
REQUESTS_PER_WINDOW = 100  # per token, in any 15 seconds (Reports API: 100 per 15 minutes)
WINDOW_SECONDS = 15.0


def harvest_rate_limit(requests: int = REQUESTS_PER_WINDOW,
                       per_seconds: float = WINDOW_SECONDS) -> RateLimit:
    return rolling_window(requests, per_seconds)


def read_harvest_error(response: httpx.Response) -> tuple[str, str]:
    """Harvest's error bodies: OAuth-style ``{"error", "error_description"}``
    for authentication, the documented ``{"code", "message"}`` otherwise."""
    body = error_object(response)
    if isinstance(body, tuple):
        return body
    if isinstance(body.get("error"), str):
        return body["error"], str(body.get("error_description") or body["error"])
    if body.get("message"):
        return f"HTTP_{response.status_code}", str(body["message"])
    return f"HTTP_{response.status_code}", str(body)[:200]


def server_time(response: httpx.Response) -> datetime | None:
    """The server's clock from the ``Date`` header: the only time both sides
    agree on, so a poll window's end is taken from it, not from ours."""
    value = response.headers.get("date")
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a Harvest list: its records, the link to the next page
    (None on the last) and the server's time when it answered."""

    records: list[dict[str, Any]]
    next_url: str | None
    server_time: datetime | None


class HarvestClient:
    """One Harvest account, reached with one personal access token."""

    def __init__(self, base_url: str = DEFAULT_BASE_URL, *, token: str, account_id: str,
                 user_agent: str = USER_AGENT, rate_limit: RateLimit | None = None,
                 clock: MonotonicClock | None = None, max_429_retries: int = 5,
                 max_retry_wait: float = 15.0, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.rate_limit = rate_limit or harvest_rate_limit()
        headers = {"Authorization": f"Bearer {token}", "Harvest-Account-Id": str(account_id)}
        self.http = VendorHttp("Harvest", self.base_url, rate_limit=self.rate_limit,
                               authorise=lambda: headers, read_error=read_harvest_error,
                               clock=clock, max_429_retries=max_429_retries,
                               max_retry_wait=max_retry_wait, timeout=timeout,
                               transport=transport, headers={"User-Agent": user_agent})

    def close(self) -> None:
        self.http.close()

    def page(self, resource: str, params: Mapping[str, Any]) -> Page:
        """The first page of ``GET /{resource}`` with ``params``."""
        query = {k: v for k, v in params.items() if v is not None}
        return self._page(resource, f"/{resource}", f"{resource} list", params=query)

    def follow(self, resource: str, url: str) -> Page:
        """The page a ``links.next`` URL names, as Harvest gave it."""
        ours, theirs = urlsplit(self.base_url), urlsplit(url)
        if (theirs.scheme, theirs.netloc) != (ours.scheme, ours.netloc) \
                or not theirs.path.startswith(ours.path + "/"):
            raise PermanentError(f"Harvest offered a next page outside {self.base_url}: {url}",
                                 code="PAGINATION_LINK")
        return self._page(resource, url, f"{resource} next page")

    def _page(self, resource: str, url: str, what: str, **kwargs: Any) -> Page:
        response = self.http.request("GET", url, f"Harvest {what}", **kwargs)
        body = json_of(response)
        records = body.get(resource) if isinstance(body, dict) else None
        if not isinstance(records, list):
            raise PermanentError(f"Harvest {what}: the answer has no {resource!r} list",
                                 code="UNEXPECTED_ANSWER")
        links = body.get("links") or {}
        next_url = links.get("next") if isinstance(links, dict) else None
        return Page([r for r in records if isinstance(r, dict)], next_url or None,
                    server_time(response))

    def all(self, resource: str, params: Mapping[str, Any] | None = None
            ) -> Iterator[dict[str, Any]]:
        """Every record of a list, following ``links.next``; a link offered
        twice stops with an error instead of looping."""
        page = self.page(resource, {"per_page": PER_PAGE_MAX, **(params or {})})
        guard = PageGuard(f"Harvest {resource}")
        while True:
            yield from page.records
            if page.next_url is None or not page.records:
                return
            guard.once(page.next_url)
            page = self.follow(resource, page.next_url)

    def get(self, resource: str, record_id: Any) -> dict[str, Any] | None:
        """One record, or None when Harvest says 404 (deleted or never there)."""
        response = self.http.request("GET", f"/{resource}/{record_id}",
                                     f"Harvest {resource} {record_id}", expected=(404,))
        if response.status_code == 404:
            return None
        body = json_of(response)
        return body if isinstance(body, dict) else None

    def create(self, resource: str, body: Mapping[str, Any]) -> dict[str, Any]:
        answer = self.http.json("POST", f"/{resource}", f"Harvest create {resource}",
                                json=dict(body))
        return dict(answer or {})

    def update(self, resource: str, record_id: Any, body: Mapping[str, Any]) -> dict[str, Any]:
        answer = self.http.json("PATCH", f"/{resource}/{record_id}",
                                f"Harvest update {resource} {record_id}", json=dict(body))
        return dict(answer or {})
