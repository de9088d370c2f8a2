"""Invoice states read back from Tryton, the ERP that owns them: customer
invoices billbridge raised (reference ``inv_…``) that are posted, paid or
cancelled become ``invoice.status_changed``.

The cursor is the newest ``(write_date, id)`` seen, and each page asks for
what comes strictly after it, so paging is by key: an invoice written while
we page moves to the end instead of shifting another past a page boundary.
Tryton stamps ``write_date`` in UTC; a state change (posting, payment,
cancellation) is a write, so it moves the invoice past the cursor.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from billbridge.connectors.base import PermanentError, PollPage
from billbridge.connectors.contracts import ContractWatch, name_drift
from billbridge.connectors.tryton.client import TrytonClient
from billbridge.connectors.tryton.contract import CONTRACT
from billbridge.connectors.tryton.mapping import (
    INVOICE_PREFIX,
    INVOICE_STATES,
    invoice_event,
    like_prefix,
)

FIELDS = ("reference", "state", "total_amount", "amount_to_pay", "write_date", "create_date")


def parse_cursor(cursor: str | None) -> tuple[datetime, int] | None:
    if not cursor:
        return None
    stamp, _, last = cursor.rpartition("|")
    try:
        return datetime.fromisoformat(stamp), int(last)
    except ValueError:
        raise PermanentError(f"tryton invoice cursor {cursor!r} is not 'ISO datetime|id'",
                             code="BAD_CURSOR") from None


class TrytonInvoiceSource:
    def __init__(self, client: TrytonClient, *, name: str = "tryton",
                 page_size: int = 100) -> None:
        self.name = name
        self.client = client
        self.page_size = page_size
        self.contracts = ContractWatch(CONTRACT)

    def poll(self, cursor: str | None) -> Iterator[PollPage]:
        position = parse_cursor(cursor)
        while True:
            domain: list[Any] = [("type", "=", "out"),
                                 ("reference", "like", like_prefix(INVOICE_PREFIX)),
                                 ("state", "in", sorted(INVOICE_STATES)),
                                 ("write_date", "!=", None)]
            if position is not None:
                stamp, last = position
                domain.append(["OR", ("write_date", ">", stamp),
                               [("write_date", "=", stamp), ("id", ">", last)]])
            rows = self.client.search_read("account.invoice", domain, FIELDS,
                                           limit=self.page_size,
                                           order=[("write_date", "ASC"), ("id", "ASC")])
            if not rows:
                return
            newest = (rows[-1]["write_date"], int(rows[-1]["id"]))
            if position is not None and newest <= position:
                raise PermanentError(f"{self.name}: the page after {cursor} did not move "
                                     "forward; stopping instead of looping",
                                     code="PAGINATION_LOOP")
            position = newest
            yield PollPage([name_drift(invoice_event(row, source=self.name),
                                       self.contracts.read("account.invoice", row))
                            for row in rows],
                           f"{newest[0].isoformat()}|{newest[1]}")
            if len(rows) < self.page_size:
                return
