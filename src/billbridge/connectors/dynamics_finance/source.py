"""Invoice status and payments read back from Dynamics 365 Finance as a
polled ``Source``.

No OData change tracking on ``/data`` is documented, so each stream pages by
key on its modified date-time (``FinanceSettings.modified_field``) and the
row's key: ``(modified, key…) > (last seen)``, ordered the same way, in every
company (``cross-company=true``). Each poll starts again at the last second
it saw (``ge``), so a row changed twice within that second is read again; the
inbox drops what it already holds, since an event's id is the invoice's
state. Two streams: the hub's free-text invoice headers (posted: issued),
and customer payment journal lines marked against an invoice, whose
invoices are then read (paid once the payments reach the total).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

from billbridge.connectors.base import Malformed, PermanentError, PollPage
from billbridge.connectors.contracts import ContractWatch, name_drift
from billbridge.connectors.dynamics_finance import mapping
from billbridge.connectors.dynamics_finance.client import FinanceClient, literal
from billbridge.connectors.dynamics_finance.contract import contract
from billbridge.connectors.dynamics_finance.mapping import FinanceSettings
from billbridge.connectors.fields import decimal_of

LOOKUP_CHUNK = 20


def after(columns: Sequence[str], values: Sequence[Any], stamp: str) -> str:
    """``$filter`` for rows strictly after ``values`` in ``columns`` order;
    the first column is the modified date-time (an unquoted literal)."""
    def lit(column: str, value: Any) -> str:
        return str(value) if column == stamp else literal(value)

    terms = []
    for index, column in enumerate(columns):
        equal = [f"{c} eq {lit(c, v)}" for c, v in zip(columns[:index], values[:index],
                                                       strict=True)]
        terms.append("(" + " and ".join([*equal, f"{column} gt {lit(column, values[index])}"])
                     + ")")
    return " or ".join(terms)


class FinanceInvoiceSource:
    def __init__(self, client: FinanceClient, settings: FinanceSettings | None = None, *,
                 name: str = "dynamics-finance", page_size: int = 1000) -> None:
        self.name = name
        self.client = client
        self.settings = settings or FinanceSettings()
        self.page_size = max(1, min(page_size, 10_000))
        self.contracts = ContractWatch(contract(self.settings))

    def _streams(self) -> dict[str, tuple[str, tuple[str, ...]]]:
        s = self.settings
        return {"invoices": (s.invoice_headers_entity,
                             (s.modified_field, "dataAreaId", s.invoice_key)),
                "payments": (s.payments_entity, (s.modified_field, "dataAreaId",
                                                 "JournalBatchNumber", "LineNumber"))}

    def poll(self, cursor: str | None) -> Iterator[PollPage]:
        state: dict[str, str] = json.loads(cursor) if cursor else {}
        for stream, (entity, columns) in self._streams().items():
            for rows in self._pages(entity, columns, state.get(stream)):
                headers = rows if stream == "invoices" else self._marked_invoices(rows)
                events = self._events(headers)
                state[stream] = str(rows[-1][columns[0]])
                yield PollPage(events, json.dumps(state, sort_keys=True))

    def _pages(self, entity: str, columns: tuple[str, ...], since: str | None
               ) -> Iterator[list[dict[str, Any]]]:
        stamp = columns[0]
        where = f"{stamp} ge {since}" if since else None
        last: tuple[Any, ...] | None = None
        while True:
            params = {"$orderby": ",".join(columns), "$top": str(self.page_size),
                      "cross-company": "true"}
            if where:
                params["$filter"] = where
            rows = self.client.rows(entity, f"{entity} changed", params=params)
            if not rows:
                return
            position = tuple(rows[-1].get(c) for c in columns)
            if last is not None and position <= last:
                raise PermanentError(f"Finance {entity}: a page ends at {position}, not after "
                                     f"the last one read ({last}); stopping instead of "
                                     "looping", code="PAGINATION_LOOP")
            last = position
            yield rows
            if len(rows) < self.page_size:
                return
            where = after(columns, position, stamp)

    def _marked_invoices(self, payments: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The hub's invoices these payment lines are marked against, as they stand now."""
        s = self.settings
        wanted = sorted({(str(p.get("dataAreaId")), str(p.get(s.payment_invoice_field)))
                         for p in payments if p.get(s.payment_invoice_field)})
        found: list[dict[str, Any]] = []
        for start in range(0, len(wanted), LOOKUP_CHUNK):
            terms = [f"(dataAreaId eq {literal(c)} and {s.invoice_key} eq {literal(n)})"
                     for c, n in wanted[start:start + LOOKUP_CHUNK]]
            found += self.client.rows(s.invoice_headers_entity, "invoices paid", params={
                "$filter": " or ".join(terms), "cross-company": "true"})
        return found

    def _paid(self, headers: list[dict[str, Any]]) -> dict[tuple[str, str], Decimal]:
        """What the payment lines marked against each invoice add up to."""
        s = self.settings
        keys = sorted({(str(h.get("dataAreaId")), str(h.get(s.invoice_key))) for h in headers})
        paid: dict[tuple[str, str], Decimal] = {}
        for start in range(0, len(keys), LOOKUP_CHUNK):
            terms = [f"(dataAreaId eq {literal(c)} and {s.payment_invoice_field} eq "
                     f"{literal(n)})" for c, n in keys[start:start + LOOKUP_CHUNK]]
            for line in self.client.rows(s.payments_entity, "payments of invoices", params={
                    "$filter": " or ".join(terms), "cross-company": "true"}):
                self.contracts.read("payment_line", line)
                key = (str(line.get("dataAreaId")), str(line.get(s.payment_invoice_field)))
                try:
                    amount = decimal_of(line.get("CreditAmount") or 0, "CreditAmount")
                except ValueError:
                    continue
                paid[key] = paid.get(key, Decimal(0)) + amount
        return paid

    def _events(self, headers: list[dict[str, Any]]) -> list[dict[str, Any] | Malformed]:
        paid = self._paid(headers) if headers else {}
        out: list[dict[str, Any] | Malformed] = []
        for header in headers:
            key = (str(header.get("dataAreaId")), str(header.get(self.settings.invoice_key)))
            drift = self.contracts.read("invoice_header", header)
            event = mapping.status_event(header, paid.get(key, Decimal(0)),
                                         settings=self.settings, source=self.name)
            if event is not None:
                out.append(name_drift(event, drift))
        return out
