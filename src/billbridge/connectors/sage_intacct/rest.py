"""HTTP client of Sage Intacct's REST API (``/ia/api/v1``): the only code here
that speaks it, beside the gateway's ``client``.

An OAuth 2.0 ``client_credentials`` token from ``/oauth2/token`` (the shared
``EntraToken``: fetched again ahead of its expiry, and once on a 401, after
which a 401 is ``TARGET_AUTH``); the entity in the ``X-IA-API-Param-Entity``
header; many writes to a call through ``POST /services/core/composite``, each
subrequest with its ``Idempotency-Key`` and answered on its own (the call
answers 200 or 207); reads through ``POST /services/core/query``, paged by
``start`` (from 1) and ``size``, with ``ia::meta`` saying whether there is a
next page. A 429 (whatever its body: it is unverified), 5xx and timeouts are
transient; the shared ``VendorHttp`` waits a 429 out a few times first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from billbridge.connectors.base import PermanentError, RateLimit, TransientError
from billbridge.connectors.entra import EntraToken
from billbridge.connectors.http import VendorHttp
from billbridge.connectors.ratelimit import MonotonicClock
from billbridge.connectors.sage_intacct.client import IntacctError, Page, Result, every_page
from billbridge.connectors.sage_intacct.rest_mapping import (
    API_PATH,
    COMPOSITE,
    ENTITY_HEADER,
    QUERY,
    TOKEN,
)

DEFAULT_REST_URL = f"https://api.intacct.com{API_PATH}"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def rest_url(base_url: str) -> str:
    """The API root: ``base_url`` with ``/ia/api/v1`` added when it lacks it."""
    base = (base_url or DEFAULT_REST_URL).rstrip("/")
    base = base.split("/ia/xml/")[0]
    return base if base.endswith(API_PATH) else f"{base}{API_PATH}"


def error_of(body: Any) -> IntacctError | None:
    """The ``ia::error`` of an answer (at the top or inside ``ia::result``)."""
    if not isinstance(body, Mapping):
        return None
    found = body.get("ia::error")
    if found is None and isinstance(body.get("ia::result"), Mapping):
        found = body["ia::result"].get("ia::error")
    if not isinstance(found, Mapping):
        return None
    details = found.get("details") or []
    more = "; ".join(str(d.get("message")) for d in details if isinstance(d, Mapping))
    return IntacctError(str(found.get("code") or found.get("errorId") or "TARGET_REJECTED"),
                        str(found.get("message") or ""), more, "")


def _read_error(response: httpx.Response) -> tuple[str, str]:
    try:
        found = error_of(response.json())
    except ValueError:
        found = None
    if found is None:
        return f"HTTP_{response.status_code}", response.text[:200]
    return found.errorno, str(found)


@dataclass(frozen=True, slots=True)
class Subrequest:
    """One write of a composite call; ``idempotency_key`` is its header."""

    method: str
    path: str
    body: dict[str, Any]
    idempotency_key: str

    def wire(self) -> dict[str, Any]:
        return {"method": self.method, "path": self.path,
                "headers": {IDEMPOTENCY_HEADER: self.idempotency_key}, "body": self.body}


def answer_of(item: Any, sent: Subrequest | None = None) -> Result:
    """One subrequest's answer: its record's ``key``, or its ``ia::error``."""
    ident, what = (sent.idempotency_key, f"{sent.method} {sent.path}") if sent else ("", "")
    found = error_of(item)
    meta = item.get("ia::meta") if isinstance(item, Mapping) else None
    failed = found is not None or (isinstance(meta, Mapping)
                                   and int(meta.get("totalError") or 0) > 0)
    if failed:
        return Result(ident, what, "failure", errors=[found or IntacctError(
            "TARGET_REJECTED", "the subrequest failed", "", "")])
    result = item.get("ia::result") if isinstance(item, Mapping) else None
    key = result.get("key") if isinstance(result, Mapping) else None
    return Result(ident, what, "success", key=str(key) if key not in (None, "") else None)


class IntacctRestClient:
    """One Intacct company through one OAuth client, shared by the
    connection's target and source."""

    def __init__(self, base_url: str = DEFAULT_REST_URL, *, client_id: str,
                 client_secret: str, username: str = "", rate_limit: RateLimit | None = None,
                 concurrency: int = 2, clock: MonotonicClock | None = None,
                 timeout: float = 60.0, throttle_wait: float = 5.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        if not (client_id and client_secret):
            raise ValueError("sage-intacct (api rest): client_id and client_secret are required")
        self.base_url = rest_url(base_url)
        self.rate_limit = rate_limit or RateLimit(2, 1.0, burst=2)
        self.throttle_wait = throttle_wait
        self.token = EntraToken(
            "sage-intacct", f"{self.base_url}{TOKEN}", client_id=client_id,
            client_secret=client_secret, scope="", now=lambda: self.http.clock.monotonic(),
            refresh_margin=60.0, timeout=timeout, transport=transport,
            form={"username": username} if username else None,
            checks="client_id, client_secret and username")
        self.http = VendorHttp("sage-intacct", self.base_url, rate_limit=self.rate_limit,
                               authorise=self.token.header, refresh=self.token.renew,
                               read_error=_read_error, concurrency=concurrency, clock=clock,
                               max_retry_wait=throttle_wait, timeout=timeout,
                               transport=transport, headers={"Accept": "application/json"})
        self.writes = 0  # composite calls sent, answered or not

    def close(self) -> None:
        self.http.close()
        self.token.close()

    @staticmethod
    def _entity(location: str) -> dict[str, str]:
        return {ENTITY_HEADER: location} if location else {}

    def composite(self, subrequests: Sequence[Subrequest], *, location: str = "",
                  what: str = "writes") -> list[Result]:
        """The subrequests in one call as the entity ``location``; an answer
        for each, in the order sent (200 or 207)."""
        self.writes += 1
        body = self.http.json("POST", COMPOSITE, what, json=[s.wire() for s in subrequests],
                              headers=self._entity(location))
        items = body.get("ia::result") if isinstance(body, Mapping) else body
        if not isinstance(items, list) or len(items) != len(subrequests):
            # To a write this is as good as a lost answer: the resend looks it up.
            raise TransientError(f"sage-intacct {what}: {len(subrequests)} subrequests, "
                                 f"the composite answer does not say each one's outcome",
                                 code="TARGET_PROTOCOL")
        return [answer_of(item, sent) for item, sent in zip(items, subrequests, strict=True)]

    def query(self, obj: str, fields: Sequence[str], *,
              filters: Sequence[Mapping[str, Any]] = (), expression: str = "and",
              order: Sequence[str] = (), start: int = 1, size: int = 1000,
              location: str = "") -> Page:
        """One page of ``/services/core/query``: ``filters`` are REST filters
        (``{"$in": {"id": [...]}}``) joined by ``expression``."""
        body: dict[str, Any] = {"object": obj, "fields": list(fields), "filters": list(filters),
                                "orderBy": [{f: "asc"} for f in order], "start": start,
                                "size": size}
        if filters:
            body["filterExpression"] = expression
        answer = self.http.json("POST", QUERY, f"query {obj}", json=body,
                                headers=self._entity(location))
        rows = answer.get("ia::result") if isinstance(answer, Mapping) else None
        if not isinstance(rows, list):
            raise PermanentError(f"sage-intacct query {obj}: an answer without ia::result",
                                 code="TARGET_PROTOCOL")
        meta = answer.get("ia::meta") or {}
        total = int(meta.get("totalCount") or len(rows))
        more = meta.get("next") not in (None, "", 0)
        return Page(rows, total, max(1, total - start + 1 - len(rows)) if more else 0)

    def query_all(self, obj: str, fields: Sequence[str], *,
                  filters: Sequence[Mapping[str, Any]] = (), expression: str = "and",
                  order: Sequence[str] = (), size: int = 1000,
                  location: str = "") -> list[dict[str, Any]]:
        return every_page(f"sage-intacct query {obj}", 1, lambda start: self.query(
            obj, fields, filters=filters, expression=expression, order=order, start=start,
            size=size, location=location))
