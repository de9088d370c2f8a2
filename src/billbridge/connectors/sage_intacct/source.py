"""Invoice status and payments read back from Sage Intacct as a polled
``Source``: the hub's AR invoices (``ARINVOICE``) changed since the last
poll, whose ``STATE`` and ``TOTALPAID`` say issued, partly paid or paid (a
payment applied to an invoice changes the invoice).

Intacct documents no change feed for the XML gateway, so the read filters on
the modified stamp (``IntacctSettings.modified_field``, whole seconds) with
``greaterthanorequalto`` the last one seen, ordered by it and ``RECORDNO``:
each poll reads the last second again, and the inbox drops what it already
holds, since an event's id is the invoice's state. Pages are the ``query``
function's ``offset``; a page asked for twice stops with ``PAGINATION_LOOP``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from billbridge.connectors.base import Malformed, PollPage
from billbridge.connectors.contracts import ContractWatch, name_drift
from billbridge.connectors.paging import PageGuard
from billbridge.connectors.sage_intacct import mapping
from billbridge.connectors.sage_intacct.client import IntacctClient
from billbridge.connectors.sage_intacct.contract import contract
from billbridge.connectors.sage_intacct.mapping import IntacctSettings
from billbridge.connectors.sage_intacct.rest_mapping import cursor_as

FIELDS = ("RECORDNO", "RECORDID", "STATE", "TOTALENTERED", "TOTALPAID", "CURRENCY",
          "MEGAENTITYID")


class IntacctInvoiceSource:
    def __init__(self, client: IntacctClient, settings: IntacctSettings | None = None, *,
                 name: str = "sage-intacct", page_size: int = 1000) -> None:
        self.name = name
        self.client = client
        self.settings = settings or IntacctSettings()
        self.page_size = max(1, min(page_size, 2000))  # a query returns at most 2,000 [RKL]
        self.contracts = ContractWatch(contract(self.settings))

    def poll(self, cursor: str | None) -> Iterator[PollPage]:
        stamp = self.settings.modified_field
        mine: dict[str, Any] = {"like": {"field": "DESCRIPTION", "value": "billbridge %"}}
        where = mine if not cursor else {"and": {
            "greaterthanorequalto": {"field": stamp, "value": cursor_as(cursor, "xml")},
            **mine}}
        location = "" if self.settings.entities else self.settings.location_id
        guard = PageGuard(f"sage-intacct ARINVOICE since {cursor or 'the start'}")
        offset = 0
        while True:
            guard.once(offset)
            page = self.client.query("ARINVOICE", [*FIELDS, stamp], where=where,
                                     order=(stamp, "RECORDNO"), offset=offset,
                                     size=self.page_size, location=location)
            if not page.records:
                return
            events: list[dict[str, Any] | Malformed] = []
            for row in page.records:
                drift = self.contracts.read("ARINVOICE", row)
                event = mapping.status_event(row, settings=self.settings, source=self.name)
                if event is not None:
                    events.append(name_drift(event, drift))
            last = str(page.records[-1].get(stamp) or "") or cursor
            yield PollPage(events, last)
            if page.remaining <= 0:
                return
            offset += len(page.records)
