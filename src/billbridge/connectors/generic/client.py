"""HTTP clients of the generic vendor: the only code here that speaks to it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import orjson

from billbridge.connectors.base import (
    IdempotencyMode,
    LivePosting,
    OutboundCommand,
    RateLimit,
    RecordResult,
    ResultStatus,
)
from billbridge.connectors.http import VendorHttp, read_error
from billbridge.connectors.paging import PageGuard

READ_PAGE = 1000  # postings per page of a read: the ledger's maximum
READ_IDS = 100  # charges named in one read, to keep its URL short


def _ledger_error(response: httpx.Response) -> tuple[str, str]:
    """The ledger's codes are its own business; a refusal is TARGET_REJECTED."""
    return "TARGET_REJECTED", read_error(response)[1]


def _data(command: OutboundCommand) -> dict[str, Any]:
    """What the ledger is sent: the payload, and for a reversal the posting it cancels."""
    data = dict(command.payload)
    if command.kind == "time_charge.reverse":
        posting = command.ref("time_charge", data.get("charge"))
        if posting:
            data["posting"] = posting
    return data


class LedgerTarget:
    """The generic ledger as a delivery ``Target``."""

    # It takes canonical ids as they are; only a reversal names, by the
    # ledger's own id, the posting it cancels.
    references: Mapping[str, tuple[str, ...]] = {"time_charge.reverse": ("charge",)}

    def __init__(self, base_url: str, token: str, *, name: str = "ledger", timeout: float = 5.0,
                 max_batch: int = 100, idempotency: IdempotencyMode = IdempotencyMode.NATIVE,
                 rate_limit: RateLimit | None = None, concurrency: int = 1,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.name = name
        self.max_batch = max_batch
        self.concurrency = concurrency  # calls at once, from every dispatcher together
        self.idempotency = idempotency
        self.rate_limit = rate_limit or RateLimit(50, 1, burst=50)
        # The dispatcher paces batches; the client paces the marker look-ups too.
        self._http = VendorHttp(name, base_url, rate_limit=self.rate_limit, timeout=timeout,
                                transport=transport, max_429_retries=0,
                                read_error=_ledger_error,
                                headers={"Authorization": f"Bearer {token}"})

    def close(self) -> None:
        self._http.close()

    def _already_applied(self, command: OutboundCommand) -> str | None:
        found = self._http.json("GET", "/v1/postings", "marker look-up",
                                params={"marker": command.idempotency_key})
        postings = found.get("postings") or []
        return str(postings[0]["id"]) if postings else None

    def live_postings(self, charge_ids: Sequence[str] | None = None) -> list[LivePosting]:
        """The ledger's live labour postings (neither reversed nor deleted); the
        posting's data is the charge it was sent as. Asked for some charges,
        it names them ``READ_IDS`` to a request."""
        if charge_ids is None:
            return self._read_postings({})
        ids = list(charge_ids)
        return [p for start in range(0, len(ids), READ_IDS)
                for p in self._read_postings({"record": ids[start:start + READ_IDS]})]

    def _read_postings(self, params: dict[str, Any]) -> list[LivePosting]:
        """Pages after the ``after`` cursor; a cursor offered twice is an
        error, never a loop."""
        out: list[LivePosting] = []
        guard = PageGuard(f"{self.name} postings")
        after: int | None = 0
        while after is not None:
            guard.once(after, f"cursor {after}")
            page = self._http.json("GET", "/v1/postings", "live postings", params={
                **params, "kind": "time_charge.post", "live": "true", "limit": READ_PAGE,
                "after": after})
            for posting in page.get("postings") or []:
                data = posting["data"]
                out.append(LivePosting(str(data["id"]), str(posting["id"]),
                                       Decimal(str(data["hours"])), Decimal(str(data["amount"])),
                                       str(data["currency"]), data.get("project")))
            after = page.get("next_after")
        return out

    def send(self, batch: Sequence[OutboundCommand]) -> list[RecordResult]:
        results: list[RecordResult] = []
        to_send = list(batch)
        if self.idempotency is IdempotencyMode.MARKER_LOOKUP:
            # No native idempotency: before writing again, look for the marker an
            # earlier attempt may have left. A first send has nothing to find.
            to_send = []
            for command in batch:
                existing = self._already_applied(command) if command.attempt > 1 else None
                if existing is None:
                    to_send.append(command)
                else:
                    results.append(RecordResult(command.idempotency_key, ResultStatus.APPLIED,
                                                external_id=existing))
        if not to_send:
            return results
        body = {"items": [{"idempotency_key": c.idempotency_key, "kind": c.kind,
                           "aggregate": c.aggregate_key, "data": _data(c)} for c in to_send]}
        answer = self._http.json("POST", "/v1/postings:batch", "batch",
                                 content=orjson.dumps(body),
                                 headers={"Content-Type": "application/json"})
        for item in answer.get("results", []):
            key = item.get("idempotency_key")
            if item.get("status") in ("created", "duplicate"):
                results.append(RecordResult(key, ResultStatus.APPLIED, external_id=item["id"]))
            else:
                err = item.get("error") or {}
                results.append(RecordResult(key, ResultStatus.REJECTED,
                                            code=err.get("code", "REJECTED"),
                                            message=err.get("message", "rejected")))
        return results


@dataclass(frozen=True, slots=True)
class TimeEntriesPage:
    entries: list[dict[str, Any]]
    page: int
    next_page: int | None


class TimeSourceClient:
    def __init__(self, base_url: str, *, per_page: int = 100, timeout: float = 5.0,
                 token: str | None = None, transport: httpx.BaseTransport | None = None) -> None:
        self.per_page = per_page
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = VendorHttp("time source", base_url, rate_limit=RateLimit(100, 1, burst=100),
                                timeout=timeout, transport=transport, headers=headers)

    def fetch(self, updated_since: str | None, page: int) -> TimeEntriesPage:
        params: dict[str, Any] = {"page": page, "per_page": self.per_page}
        if updated_since:
            params["updated_since"] = updated_since
        body = self._http.json("GET", "/v1/time_entries", "time entries", params=params)
        return TimeEntriesPage(list(body.get("time_entries") or []), int(body.get("page", page)),
                               body.get("next_page"))

    def iter_pages(self, updated_since: str | None) -> Iterator[TimeEntriesPage]:
        """Follow ``next_page`` to the end; a page number seen twice is an error,
        never an endless loop."""
        guard = PageGuard("time entries")
        number: int | None = 1
        while number is not None:
            guard.once(number, f"page {number}")
            page = self.fetch(updated_since, number)
            yield page
            number = page.next_page

    def close(self) -> None:
        self._http.close()
