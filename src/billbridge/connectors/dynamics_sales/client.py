"""HTTP client of the Dataverse Web API v9.2: the only code here that speaks
to Dynamics 365 Sales.

Dataverse's own parts: the API path, its limits (6,000 requests per 300 s as
a rolling token bucket, at most 52 calls in flight, 1,000 requests in a
``$batch``, pages of at most 5,000 under ``Prefer: odata.maxpagesize``),
change tracking's delta links and keys by primary id. The token (Entra ID
client credentials, renewed ahead of expiry and once more on a 401; MSAL's
``ConfidentialClientApplication`` gets the same token from the emulator in
the contract test), the ``$batch`` codec and ``@odata.nextLink`` paging with
loop detection are the shared ``connectors/entra.py`` and
``connectors/odata.py``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from billbridge.connectors.base import RateLimit, TransientError
from billbridge.connectors.entra import token_endpoint
from billbridge.connectors.odata import (
    ODataService,
    describe,
    loads,
    next_links,
)
from billbridge.connectors.odata import key_segment as keyed
from billbridge.connectors.ratelimit import rolling_window

API_PATH = "/api/data/v9.2"
MAX_PAGE_SIZE = 5000  # odata.maxpagesize: default and maximum
BATCH_LIMIT = 1000  # requests in one $batch
CONCURRENCY_LIMIT = 52  # calls in flight per user


def dataverse_rate_limit(requests: int = 6000, per_seconds: float = 300.0) -> RateLimit:
    """Service protection counts requests per user over a sliding 300 s window."""
    return rolling_window(requests, per_seconds)


class DeltaTokenExpired(Exception):
    """Dataverse refused a delta link (its token is older than the table's
    change-tracking retention): the table must be read again from the start."""


def key_segment(entity_set: str, key: str | Mapping[str, Any]) -> str:
    """``accounts(<guid>)`` or ``accounts(accountnumber='A-1')``: a record by
    primary id or by alternate key."""
    return f"{entity_set}({key})" if isinstance(key, str) else keyed(entity_set, key)


class DataverseClient(ODataService):
    """One Dataverse environment as one application user: its token, its
    limits and its paging. ``options`` are ``ODataService``'s (clock,
    refresh_margin, max_429_retries, timeout, verify, transport)."""

    def __init__(self, base_url: str, *, tenant: str, client_id: str, client_secret: str,
                 authority: str | None = None, scope: str | None = None,
                 rate_limit: RateLimit | None = None, concurrency: int = CONCURRENCY_LIMIT,
                 max_retry_wait: float = 30.0, expired_token_statuses: Sequence[int] = (400, 410),
                 **options: Any) -> None:
        super().__init__(
            "Dataverse", base_url, API_PATH, token_url=token_endpoint(tenant, authority),
            client_id=client_id, client_secret=client_secret, scope=scope,
            rate_limit=rate_limit or dataverse_rate_limit(), concurrency=concurrency,
            batch_limit=BATCH_LIMIT, max_retry_wait=max_retry_wait, **options)
        self.api = self.root
        self.expired_token_statuses = tuple(expired_token_statuses)

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
        body = loads(response.text)
        if not isinstance(body, dict) or not isinstance(body.get("value"), list):
            raise TransientError(f"Dataverse {what}: the answer has no 'value' list",
                                 code="BAD_ANSWER")
        return body

    def pages(self, entity_set: str, what: str, *, params: Mapping[str, str],
              page_size: int = MAX_PAGE_SIZE) -> Iterator[dict[str, Any]]:
        """Every page of a query, following ``@odata.nextLink``; a link
        offered twice stops with an error instead of looping."""
        return next_links(
            lambda: self.page(entity_set, what, params=params, page_size=page_size),
            lambda link: self.page(link, what, page_size=page_size), f"Dataverse {what}")

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
        body = loads(response.text)
        return body if isinstance(body, dict) else None
