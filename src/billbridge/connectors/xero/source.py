"""Invoice status and payments read back from Xero as a polled ``Source``.

Two streams, each with its own position in one cursor: the app's own ACCREC
invoices changed since (``If-Modified-Since``, ``createdByMyApp=true``), and
customer payments changed since, whose invoices are then read. Both map an
invoice through ``mapping.status_event``, whose event id is the invoice's
state, so a change seen through both streams is one event in the inbox.

Paging is by key: each request asks again from the newest ``UpdatedDateUTC``
seen (If-Modified-Since is to the second and inclusive, so the boundary's
records are read again and the inbox drops them). A record edited while we
page moves to the end but cannot shift an unseen one past a page boundary.
Page numbers only walk through more records than a page holds in one second.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from billbridge.connectors.base import PollPage
from billbridge.connectors.contracts import ContractWatch, name_drift
from billbridge.connectors.paging import PageGuard
from billbridge.connectors.xero.client import PAGE_SIZE, XeroClient
from billbridge.connectors.xero.contract import CONTRACT
from billbridge.connectors.xero.mapping import parse_xero_datetime, status_event

STREAMS = {"invoices": ("Invoices", 'Type=="ACCREC"'),
           "payments": ("Payments", 'PaymentType=="ACCRECPAYMENT"')}


class XeroInvoiceSource:
    def __init__(self, client: XeroClient, *, name: str = "xero",
                 page_size: int = PAGE_SIZE) -> None:
        self.name = name
        self.client = client
        self.page_size = max(1, min(page_size, 1000))
        self.contracts = ContractWatch(CONTRACT)

    def poll(self, cursor: str | None) -> Iterator[PollPage]:
        state: dict[str, str] = json.loads(cursor) if cursor else {}
        for stream in STREAMS:
            for events, newest in self._stream(stream, state.get(stream)):
                if newest:
                    state[stream] = newest
                yield PollPage(events, json.dumps(state, sort_keys=True))

    def _stream(self, stream: str, since: str | None
                ) -> Iterator[tuple[list[Any], str | None]]:
        collection, kind = STREAMS[stream]
        number = 1
        guard = PageGuard(f"xero {stream}")
        while True:
            params: dict[str, Any] = {"where": kind, "order": "UpdatedDateUTC ASC",
                                      "page": number, "pageSize": self.page_size}
            if stream == "invoices":
                params["createdByMyApp"] = "true"
            rows = self.client.records(collection, f"{stream} changed", params=params,
                                       since=datetime.fromisoformat(since) if since else None)
            if not rows:
                return
            # The same records offered again for the same position means the
            # paging is not moving: stop rather than loop for ever.
            ids = tuple(str(r.get("InvoiceID") or r.get("PaymentID")) for r in rows)
            guard.once((since, ids), f"the records of page {number} since {since}")
            if stream == "payments":
                self.contracts.read_all("Payment", rows)
            invoices = rows if stream == "invoices" else self._invoices_paid(rows)
            events = [e for e in (name_drift(status_event(i, source=self.name),
                                             self.contracts.read("Invoice", i))
                                  for i in invoices) if e is not None]
            newest = _newest(rows)
            yield events, newest
            if len(rows) < self.page_size:
                return
            if newest and newest != since:
                since, number = newest, 1
            else:
                number += 1  # a full page within one second: walk its pages

    def _invoices_paid(self, payments: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The app's invoices that these payments were made against, as they
        stand now (a deleted payment reopens its invoice)."""
        ids = sorted({str((p.get("Invoice") or {}).get("InvoiceID")) for p in payments
                      if (p.get("Invoice") or {}).get("InvoiceID")})
        found: list[dict[str, Any]] = []
        for start in range(0, len(ids), 50):
            found += self.client.records("Invoices", "invoices paid", params={
                "IDs": ",".join(ids[start:start + 50]), "createdByMyApp": "true"})
        return found


def _newest(rows: list[dict[str, Any]]) -> str | None:
    """The newest UpdatedDateUTC of a page, to the second (If-Modified-Since's
    resolution); a stamp that cannot be read is skipped, not trusted."""
    stamps = []
    for row in rows:
        try:
            stamp = parse_xero_datetime(row.get("UpdatedDateUTC"))
        except ValueError:
            stamp = None
        if stamp is not None:
            stamps.append(stamp.replace(microsecond=0))
    return max(stamps).isoformat() if stamps else None

