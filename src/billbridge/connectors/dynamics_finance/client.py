"""HTTP client of Dynamics 365 Finance's OData data entities (``/data``): the
only code here that speaks to finance and operations.

Finance's own parts: the ``/data`` root, its limits (6,000 requests per user
in a sliding 300 s window as a token bucket, at most 52 calls in flight,
5,000 operations in a ``$batch``, server-driven pages of at most 10,000) and
which request of a refused change set failed (by Content-ID). The token
(Entra ID client credentials, ``scope`` = ``<environment URL>/.default``),
literals and key segments, Edm.Decimal figures written as exact JSON numbers
and read back as ``Decimal``, the ``$batch`` codec and ``@odata.nextLink``
paging with loop detection are the shared ``connectors/entra.py`` and
``connectors/odata.py``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from billbridge.connectors.base import RateLimit, TransientError
from billbridge.connectors.entra import token_endpoint
from billbridge.connectors.odata import (
    Answer,
    ChangeSetResult,
    ODataService,
    Operation,
    encode_batch,
    json_answer,
    key_segment,
    literal,
    next_links,
)
from billbridge.connectors.ratelimit import rolling_window

DATA_PATH = "/data"
MAX_PAGE_SIZE = 10_000  # server-driven paging's largest page
BATCH_LIMIT = 5000  # operations in one $batch
CONCURRENCY_LIMIT = 52  # requests in flight per user
AUTH_HINT = (", and that the application is listed under Microsoft Entra applications "
             "in Finance")


def finance_rate_limit(requests: int = 6000, per_seconds: float = 300.0) -> RateLimit:
    """Service protection counts requests per user over a sliding 300 s window."""
    return rolling_window(requests, per_seconds)


class FinanceClient(ODataService):
    """One finance and operations environment as one Entra application (a
    mapped user): its token, its limits and its paging. ``options`` are
    ``ODataService``'s (clock, refresh_margin, max_429_retries, timeout,
    verify, transport)."""

    def __init__(self, base_url: str, *, tenant: str, client_id: str, client_secret: str,
                 token_url: str | None = None, scope: str | None = None,
                 rate_limit: RateLimit | None = None, concurrency: int = CONCURRENCY_LIMIT,
                 max_retry_wait: float = 60.0, **options: Any) -> None:
        super().__init__(
            "Finance", base_url, DATA_PATH, token_url=token_url or token_endpoint(tenant),
            client_id=client_id, client_secret=client_secret, scope=scope,
            rate_limit=rate_limit or finance_rate_limit(),
            concurrency=min(concurrency, CONCURRENCY_LIMIT), batch_limit=BATCH_LIMIT,
            max_retry_wait=max_retry_wait, auth_hint=AUTH_HINT, **options)

    # -- reads ---------------------------------------------------------------------
    def page(self, url: str, what: str, *, params: Mapping[str, str] | None = None
             ) -> dict[str, Any]:
        """One page: ``url`` an entity (with ``params``) or a ``@odata.nextLink``
        as Finance gave it (sent unchanged)."""
        body = json_answer(self.http.request("GET", url, what,
                                             params=dict(params or {}) or None), "Finance", what)
        if not isinstance(body, dict) or not isinstance(body.get("value"), list):
            raise TransientError(f"Finance {what}: the answer has no 'value' list",
                                 code="BAD_ANSWER")
        return body

    def pages(self, entity: str, what: str, *, params: Mapping[str, str]
              ) -> Iterator[dict[str, Any]]:
        """Every page of a query, following ``@odata.nextLink``; a link
        offered twice stops with an error instead of looping."""
        return next_links(lambda: self.page(entity, what, params=params),
                          lambda link: self.page(link, what), f"Finance {what}")

    def rows(self, entity: str, what: str, *, params: Mapping[str, str]
             ) -> list[dict[str, Any]]:
        return [dict(r) for body in self.pages(entity, what, params=params)
                for r in body["value"] if isinstance(r, dict)]


__all__ = ["AUTH_HINT", "BATCH_LIMIT", "CONCURRENCY_LIMIT", "DATA_PATH", "MAX_PAGE_SIZE", "Answer",
           "ChangeSetResult", "FinanceClient", "Operation", "encode_batch",
           "finance_rate_limit", "key_segment", "literal"]
