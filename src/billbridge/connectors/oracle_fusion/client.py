"""HTTP client of Oracle Fusion Cloud ERP's REST resources: the only code here
that speaks to it.

It composes the shared ``VendorHttp`` and adds what is Oracle's own: HTTP
Basic over TLS (Oracle's examples, [ARI]), item payloads as
``application/vnd.oracle.adf.resourceitem+json``, collections paged by
``offset``/``limit`` with ``hasMore`` (a ``PageGuard`` per walk), the
``Upsert-Mode`` header, the REST framework's batch (``parts[]`` posted to
the REST root; all or none [BATCH]), Oracle's error bodies (plain text, or
the framework's JSON with ``o:errorDetails``), and JSON numbers as Decimal.

Oracle publishes no request rate, page-size maximum or throttle answer
(docs/connectors/oracle-fusion.md, "Which facts are settings"): each is a setting here
(docs/connectors/oracle-fusion.md).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from billbridge.connectors.base import PermanentError, RateLimit, TransientError
from billbridge.connectors.http import VendorHttp
from billbridge.connectors.odata import dumps, loads
from billbridge.connectors.paging import PageGuard
from billbridge.connectors.ratelimit import MonotonicClock, rolling_window

VERSION = "11.13.18.05"
FSCM = f"/fscmRestApi/resources/{VERSION}"
CRM = f"/crmRestApi/resources/{VERSION}"
ITEM = "application/vnd.oracle.adf.resourceitem+json"
BATCH = "application/vnd.oracle.adf.batch+json"  # (unverified): a setting
PAGE_SIZE = 500  # [3p KL, RL]: 500 (some resources 499); the answered ``limit`` is trusted
CONCURRENCY = 4  # no published figure: a cautious default, a setting


def oracle_rate_limit(per_minute: int = 600) -> RateLimit:
    """No published figure [RL, 3p]: a rolling minute of ``per_minute`` calls."""
    return rolling_window(per_minute, 60.0)


def read_error(response: httpx.Response) -> tuple[str, str]:
    """(code, message) from Oracle's answers: the REST framework's JSON
    (``title``/``detail`` and ``o:errorDetails[].detail``/``o:errorCode``),
    or the plain-text message Fusion sends for most 400s."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return f"HTTP_{response.status_code}", text[:300] or response.reason_phrase
    if not isinstance(body, dict):
        return f"HTTP_{response.status_code}", str(body)[:300]
    details = [d for d in body.get("o:errorDetails") or [] if isinstance(d, dict)]
    code = next((str(d["o:errorCode"]) for d in details if d.get("o:errorCode")),
                str(body.get("o:errorCode") or f"HTTP_{response.status_code}"))
    messages = [str(d.get("detail")) for d in details if d.get("detail")]
    message = "; ".join(messages) or str(body.get("detail") or body.get("title") or body)
    return code, message[:300]


@dataclass(frozen=True, slots=True)
class Part:
    """One part of a batch: ``operation`` is create, update, replace, delete or get."""

    id: str
    path: str  # under the REST root, with the version: ``/11.13.18.05/receivablesInvoices``
    operation: str
    payload: Mapping[str, Any] | None = None

    def wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.id, "path": self.path, "operation": self.operation}
        if self.payload is not None:
            body["payload"] = dict(self.payload)
        return body


@dataclass(frozen=True, slots=True)
class BatchAnswer:
    """A batch's outcome: every part's payload by id when it applied, else
    the failing parts' messages by id (nothing applied: all or none)."""

    applied: dict[str, dict[str, Any]]
    failed: dict[str, str]


def part_error(part: Mapping[str, Any]) -> str:
    """What a failed part says, in the framework's or a plain shape."""
    problem = part.get("exception") or part.get("payload") or part
    if isinstance(problem, Mapping):
        details = [str(d.get("detail")) for d in problem.get("o:errorDetails") or []
                   if isinstance(d, Mapping) and d.get("detail")]
        return "; ".join(details) or str(problem.get("detail") or problem.get("title")
                                         or problem)[:300]
    return str(problem)[:300]


class OracleClient:
    """One Fusion pod and integration user, shared by the connection's target
    and source so together they keep within the configured limits."""

    def __init__(self, base_url: str, *, username: str, password: str,
                 rate_limit: RateLimit | None = None, concurrency: int = CONCURRENCY,
                 page_size: int = PAGE_SIZE, batch_media_type: str = BATCH,
                 clock: MonotonicClock | None = None, timeout: float = 30.0,
                 verify: Any = True, transport: httpx.BaseTransport | None = None) -> None:
        if not username or not password:
            raise ValueError("oracle-fusion: a username and password are required (the "
                             "integration user's, for HTTP Basic)")
        self.rate_limit = rate_limit or oracle_rate_limit()
        self.concurrency = max(1, concurrency)
        self.page_size = max(1, page_size)
        self.batch_media_type = batch_media_type
        self.writes = 0  # write requests sent (answered or not), for the target
        basic = base64.b64encode(f"{username}:{password}".encode()).decode()
        self.http = VendorHttp("oracle-fusion", base_url, rate_limit=self.rate_limit,
                               authorise=lambda: {"Authorization": f"Basic {basic}"},
                               read_error=read_error, concurrency=self.concurrency,
                               clock=clock, max_retry_wait=60.0, timeout=timeout,
                               verify=verify, transport=transport,
                               headers={"Accept": "application/json"})

    @property
    def requests_sent(self) -> int:
        return self.http.requests_sent

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, what: str, *, body: Any = None,
             headers: Mapping[str, str] | None = None, **kwargs: Any) -> Any:
        """One call; its JSON answer with fractions as Decimal (None when empty).
        An answer that cannot be read is transient: to a write it is as good
        as lost, and the resend must look its reference up."""
        sent = dict(headers or {})
        if body is not None:
            kwargs["content"] = dumps(body).encode()
            sent.setdefault("Content-Type", ITEM)
        response = self.http.request(method, path, what, headers=sent, **kwargs)
        if not response.content:
            return None
        try:
            return loads(response.text)
        except ValueError:
            raise TransientError(f"oracle-fusion {what}: the answer is not JSON: "
                                 f"{response.text[:200]!r}", code="TARGET_PROTOCOL") from None

    # -- reads ---------------------------------------------------------------------
    def page(self, path: str, what: str, *, q: str | None = None, offset: int = 0,
             order_by: str | None = None, limit: int | None = None,
             params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """One page of a collection: ``{items, count, hasMore, limit, offset}``."""
        asked = {"limit": str(limit or self.page_size), "offset": str(offset),
                 "onlyData": "true", **(params or {})}
        if q:
            asked["q"] = q
        if order_by:
            asked["orderBy"] = order_by
        answer = self.call("GET", path, what, params=asked)
        if not isinstance(answer, dict) or not isinstance(answer.get("items"), list):
            raise PermanentError(f"oracle-fusion {what}: a collection answer has no items: "
                                 f"{str(answer)[:200]}", code="TARGET_PROTOCOL")
        return answer

    def items(self, path: str, what: str, *, q: str | None = None,
              order_by: str | None = None,
              params: Mapping[str, str] | None = None) -> Iterator[dict[str, Any]]:
        """Every item of a collection, a page at a time by ``offset``. A page
        goes on while ``hasMore`` says so or it came back full: ``hasMore``
        can be wrong once ``offset`` is used [KL, 3p], and the server may cap
        ``limit`` silently (its answered ``limit`` is what a full page is)."""
        guard = PageGuard(f"oracle-fusion {what}")
        offset = 0
        while True:
            answer = self.page(path, what, q=q, offset=offset, order_by=order_by,
                               params=params)
            rows = [r for r in answer["items"] if isinstance(r, dict)]
            if rows:  # a server that serves the same page whatever the offset
                guard.once(hashlib.sha256(dumps(rows).encode()).hexdigest(),
                           f"the page at offset {offset}", repeat="served")
            yield from rows
            served = int(answer.get("limit") or self.page_size)
            if not rows or not (answer.get("hasMore") is True or len(rows) >= served):
                return
            offset += len(rows)

    # -- writes --------------------------------------------------------------------
    def create(self, path: str, what: str, payload: Mapping[str, Any], *,
               upsert: bool = False) -> dict[str, Any]:
        """POST one item; ``Upsert-Mode: true`` asks Oracle to update a match instead."""
        self.writes += 1
        headers = {"Upsert-Mode": "true"} if upsert else {}
        answer = self.call("POST", path, what, body=payload, headers=headers)
        return dict(answer) if isinstance(answer, dict) else {}

    def update(self, path: str, what: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        self.writes += 1
        answer = self.call("PATCH", path, what, body=payload)
        return dict(answer) if isinstance(answer, dict) else {}

    def batch(self, root: str, parts: Sequence[Part], what: str) -> BatchAnswer:
        """The parts in one call to the REST ``root`` ([BATCH]: sequential, all or
        none; only the failing parts come back when one fails)."""
        self.writes += 1
        response = self.http.request("POST", root, what, expected=(400,),
                                     content=dumps({"parts": [p.wire() for p in parts]}),
                                     headers={"Content-Type": self.batch_media_type})
        try:
            body = loads(response.text) if response.content else {}
        except ValueError:
            if response.status_code == 400:
                self.http.raise_for(response, what)
            raise TransientError(f"oracle-fusion {what}: the batch answer is not JSON",
                                 code="TARGET_PROTOCOL") from None
        answered = [p for p in (body or {}).get("parts") or [] if isinstance(p, dict)]
        if response.status_code == 400:
            failed = {str(p.get("id")): part_error(p) for p in answered}
            if not failed:
                self.http.raise_for(response, what)
            return BatchAnswer({}, failed)
        return BatchAnswer({str(p.get("id")): dict(p.get("payload") or {}) for p in answered},
                           {})

