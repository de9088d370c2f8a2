"""HTTP client of Kantata OX (formerly Mavenlink), API v1: the only code here
that speaks to it.

OAuth 2.0 bearer token; every list answers in Kantata's normalised shape
(``count``, ``results`` of ``{key, id}``, one object map per type keyed by id,
``meta`` with ``page_count``/``page_number``/``page_size``), paged with
``page`` and ``per_page`` (at most 200). Kantata documents general rate limits
on all requests plus lower ones of their own on a few endpoints (``GET
/workspaces``, ``GET``/``POST /custom_field_values`` among them): two token
buckets. A 429 carries no documented Retry-After ("retry after a small
delay"): ``VendorHttp`` waits and retries. Errors are ``{"errors": [{type,
message, field}]}``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from billbridge.connectors.base import PermanentError, RateLimit
from billbridge.connectors.http import VendorHttp, error_object
from billbridge.connectors.paging import PageGuard
from billbridge.connectors.ratelimit import MonotonicClock, TokenBucket

DEFAULT_BASE_URL = "https://api.mavenlink.com/api/v1"
PER_PAGE_MAX = 200  # documented maximum of per_page
BULK_MAX = 100  # objects per bulk create (custom field values, time entries, expenses)
ONLY_MAX = 200  # ids per ``only=`` request: one full page


def per_minute(requests: int) -> RateLimit:
    """A bucket that never sends more than ``requests`` in any rolling minute:
    a small burst, refilled at the rest (burst + rate x minute = requests)."""
    burst = max(1, requests // 20)
    return RateLimit(max(1, requests - burst), 60.0, burst=burst)


# Kantata's figures are in its Knowledge Base, not its API reference (see
# docs/connectors/kantata.md); these defaults stay well under any plausible one.
DEFAULT_RATE = per_minute(100)
DEFAULT_LIMITED_RATE = per_minute(30)
# Endpoints with "their own rate limit" in the API reference, by (method, resource).
LIMITED = frozenset({("GET", "workspaces"), ("POST", "workspaces"),
                     ("GET", "custom_field_values"), ("POST", "custom_field_values")})


def kantata_error(response: httpx.Response) -> tuple[str, str]:
    """(error type, every message with its field) of ``{"errors": [...]}``."""
    body = error_object(response)
    if isinstance(body, tuple):
        return body
    errors = body.get("errors")
    if not isinstance(errors, list) or not errors:
        return f"HTTP_{response.status_code}", str(body)[:200]
    items = [e for e in errors if isinstance(e, dict)]
    kind = str(items[0].get("type") or "error").upper() if items else "ERROR"
    text = "; ".join((f"{e['field']}: " if e.get("field") else "") + str(e.get("message"))
                     for e in items)
    return f"KANTATA_{kind}", text


@dataclass(frozen=True)
class Page:
    """One page of a normalised answer: the records of ``key`` in ``results``
    order, every object map the answer carried, and the page counters."""

    key: str
    records: list[dict[str, Any]]
    objects: Mapping[str, Mapping[str, dict[str, Any]]] = field(default_factory=dict)
    count: int = 0
    page_number: int = 1
    page_count: int = 1

    def lookup(self, key: str, record_id: Any) -> dict[str, Any] | None:
        return (self.objects.get(key) or {}).get(str(record_id))

    @classmethod
    def parse(cls, key: str, body: Any, what: str) -> Page:
        if not isinstance(body, dict) or not isinstance(body.get("results"), list):
            raise PermanentError(f"{what}: not a normalised Kantata answer: {str(body)[:200]}",
                                 code="KANTATA_PROTOCOL")
        objects = {k: v for k, v in body.items() if isinstance(v, dict) and k != "meta"}
        records = []
        for ref in body["results"]:
            if isinstance(ref, dict) and ref.get("key") == key:
                found = (objects.get(key) or {}).get(str(ref.get("id")))
                if found is not None:
                    records.append(found)
        given = body.get("meta")
        meta: Mapping[str, Any] = given if isinstance(given, dict) else {}
        return cls(key, records, objects, int(body.get("count") or 0),
                   int(meta.get("page_number") or 1), int(meta.get("page_count") or 1))


def merge(pages: Iterable[Page], key: str) -> Page:
    """Several answers about one resource as one page (for ``only=`` chunks)."""
    records: list[dict[str, Any]] = []
    objects: dict[str, dict[str, dict[str, Any]]] = {}
    for page in pages:
        records += page.records
        for name, found in page.objects.items():
            objects.setdefault(name, {}).update(found)
    return Page(key, records, objects, len(records))


class KantataClient:
    """One Kantata account. Thread-safe: a poller, the dispatcher and webhook
    threads share it and together keep within the account's limits."""

    def __init__(self, base_url: str = DEFAULT_BASE_URL, *, access_token: str,
                 rate_limit: RateLimit | None = None,
                 limited_rate_limit: RateLimit | None = None,
                 clock: MonotonicClock | None = None, max_429_retries: int = 5,
                 max_retry_wait: float = 15.0, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.access_token = access_token
        self.http = VendorHttp("kantata", base_url or DEFAULT_BASE_URL,
                               rate_limit=rate_limit or DEFAULT_RATE,
                               authorise=lambda: {"Authorization": f"Bearer {self.access_token}"},
                               read_error=kantata_error, clock=clock,
                               max_429_retries=max_429_retries, max_retry_wait=max_retry_wait,
                               timeout=timeout, transport=transport,
                               headers={"Accept": "application/json"})
        self.limited_rate_limit = limited_rate_limit or DEFAULT_LIMITED_RATE
        self.limited = TokenBucket(self.limited_rate_limit, self.http.clock)
        self._limited_pace = threading.Lock()

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, resource: str, what: str, **kwargs: Any) -> Any:
        """One call to ``/{resource}.json`` (both paths are documented; ``.json``
        is what the official gem and the reference's examples use)."""
        if (method, resource) in LIMITED:
            with self._limited_pace:
                self.limited.take()
        return self.http.json(method, f"/{resource}.json", f"Kantata {what}", **kwargs)

    def page(self, resource: str, params: Mapping[str, Any], *, page: int = 1,
             per_page: int = PER_PAGE_MAX) -> Page:
        query = {**params, "page": page, "per_page": max(1, min(per_page, PER_PAGE_MAX))}
        body = self.call("GET", resource, f"{resource} page {page}", params=query)
        return Page.parse(resource, body, f"Kantata {resource}")

    def pages(self, resource: str, params: Mapping[str, Any]) -> Iterator[Page]:
        """Every page by number until ``page_count``; a page that offers only
        records already seen is an error, never an endless loop."""
        number, guard = 1, PageGuard(f"Kantata {resource}")
        while True:
            found = self.page(resource, params, page=number)
            ids = tuple(str(r.get("id")) for r in found.records)
            if ids:
                guard.once(ids, f"the records of page {number}")
            yield found
            if not found.records or number >= found.page_count:
                return
            number += 1

    def by_ids(self, resource: str, ids: Iterable[Any],
               params: Mapping[str, Any] | None = None) -> Page:
        """The records with these ids (``only=``, 200 a call); ids Kantata does
        not return are absent: deleted, or not visible to this token."""
        unique = list(dict.fromkeys(str(i) for i in ids if i not in (None, "")))
        chunks = [unique[i:i + ONLY_MAX] for i in range(0, len(unique), ONLY_MAX)]
        return merge((self.page(resource, {**(params or {}), "only": ",".join(chunk)})
                      for chunk in chunks), resource)

    def create_custom_field_values(self, values: Sequence[Mapping[str, Any]]) -> Page:
        """``POST /custom_field_values`` in bulk (at most 100): creating a value
        for a subject and field that has one replaces it (Kantata's create is
        also its update), which is what makes a write-back idempotent."""
        if len(values) > BULK_MAX:
            raise ValueError(f"at most {BULK_MAX} custom field values per Kantata call")
        body = self.call("POST", "custom_field_values", "custom field values bulk create",
                         json={"custom_field_values": [dict(v) for v in values]})
        return Page.parse("custom_field_values", body, "Kantata custom field values")
