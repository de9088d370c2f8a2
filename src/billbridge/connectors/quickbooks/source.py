"""QuickBooks Online as a polled ``Source`` of invoice status: the ERP owns
invoices and payments, so their changes flow back as ``invoice.status_changed``.

Two streams, each paged by key on ``MetaData.LastUpdatedTime``: invoices
changed since the cursor, and payments changed since the cursor (whose linked
invoices are then read by id), because a payment is a record of its own and
the invoice it settles is read back to learn its balance. The cursor holds
both stamps (JSON). ``LastUpdatedTime`` has whole seconds, so each page starts
again at the newest stamp seen, inclusive: records sharing a second are walked
with STARTPOSITION, and the ones read twice at a boundary are the same event
(the event id is the invoice's state), which the inbox drops.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from billbridge.connectors.base import PermanentError, PollPage
from billbridge.connectors.contracts import ContractWatch, name_drift
from billbridge.connectors.paging import PageGuard, chunks
from billbridge.connectors.quickbooks.client import (
    MAX_RESULTS,
    QuickBooksClient,
    pinned_minor_version,
    quote,
)
from billbridge.connectors.quickbooks.contract import contract
from billbridge.connectors.quickbooks.mapping import status_event

EPOCH = "1970-01-01T00:00:00+00:00"


class QuickBooksSource:
    def __init__(self, client: QuickBooksClient, *, name: str = "quickbooks",
                 page_size: int = MAX_RESULTS) -> None:
        self.name = name
        self.client = client
        self.page_size = max(1, min(page_size, MAX_RESULTS))
        self.contracts = ContractWatch(contract(client.minor_version))

    def configure(self, configuration: Any) -> None:
        """Send the ``minorversion`` the governed configuration pins for this
        connection (``api_versions``), when it pins one."""
        pinned = configuration.api_versions.get(self.name)
        if pinned:
            self.client.minor_version = pinned_minor_version(pinned)
            self.contracts.contract = contract(self.client.minor_version)

    def poll(self, cursor: str | None) -> Iterator[PollPage]:
        stamps = _stamps(cursor)
        for stream in ("invoices", "payments"):
            for page, newest in self._changed("Invoice" if stream == "invoices" else "Payment",
                                              stamps[stream]):
                stamps[stream] = newest
                if stream == "payments":
                    self.contracts.read_all("Payment", page)
                invoices = page if stream == "invoices" else self._linked_invoices(page)
                events = [e for e in (name_drift(status_event(i, source=self.name),
                                                 self.contracts.read("Invoice", i))
                                      for i in invoices) if e is not None]
                yield PollPage(events, json.dumps(stamps, sort_keys=True))

    def _changed(self, entity: str, since: str) -> Iterator[tuple[list[dict[str, Any]], str]]:
        """Pages of records changed at or after ``since``, oldest first, with
        the newest stamp each page reached."""
        start = 1
        guard = PageGuard(f"{self.name}: {entity} changes")
        while True:
            guard.once((since, start), f"from {since} at position {start}")
            page = self.client.query(
                f"select * from {entity} where MetaData.LastUpdatedTime >= {quote(since)} "
                f"orderby MetaData.LastUpdatedTime startposition {start} "
                f"maxresults {self.page_size}").get(entity) or []
            if not page:
                return
            newest = max((_stamp(r) for r in page), default=since, key=_instant)
            if _instant(newest) < _instant(since):
                newest = since
            yield page, newest
            if len(page) < self.page_size:
                return
            if newest != since:
                since, start = newest, 1  # by key: start again from the newest stamp
            else:
                start += len(page)  # a whole page in one second: walk it

    def _linked_invoices(self, payments: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ids = list(dict.fromkeys(
            str(link.get("TxnId")) for payment in payments for line in payment.get("Line") or []
            for link in line.get("LinkedTxn") or [] if link.get("TxnType") == "Invoice"))
        invoices: list[dict[str, Any]] = []
        for chunk in chunks(ids, 100):
            invoices += self.client.query_all(
                "Invoice", f"Id in ({', '.join(quote(i) for i in chunk)})")
        return invoices


def _stamps(cursor: str | None) -> dict[str, str]:
    if not cursor:
        return {"invoices": EPOCH, "payments": EPOCH}
    try:
        stored = json.loads(cursor)
        return {"invoices": str(stored["invoices"]), "payments": str(stored["payments"])}
    except (ValueError, KeyError, TypeError):
        raise PermanentError(f"quickbooks: the stored cursor {cursor!r} is not this source's "
                             "(expected JSON with invoices and payments stamps)",
                             code="BAD_CURSOR") from None


def _stamp(record: dict[str, Any]) -> str:
    return str((record.get("MetaData") or {}).get("LastUpdatedTime") or EPOCH)


def _instant(stamp: str) -> float:
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return 0.0

