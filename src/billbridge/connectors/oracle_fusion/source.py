"""Invoice status and receipts read back from Oracle Fusion as a polled ``Source``.

Fusion documents no change feed a poller can use without Oracle Integration
(business events are delivered through it [BEV]), so each stream
pages by key on ``LastUpdateDate`` and the record's id, ordered the same
way: ``q=(LastUpdateDate > 'last') or (LastUpdateDate = 'last' and id > n)``
with ``offset=0`` each time, which no row changed mid-walk can shift (an
``offset`` walk can skip a row and its ``hasMore`` can be wrong [KL, 3p]).
Two streams: the hub's invoices (complete: issued), and standard receipts,
whose remittance references name the invoices they pay; those invoices are
read again (paid once nothing is owed).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from billbridge.connectors.base import Malformed, PollPage
from billbridge.connectors.contracts import ContractWatch, name_drift
from billbridge.connectors.oracle_fusion import mapping
from billbridge.connectors.oracle_fusion.client import FSCM, OracleClient
from billbridge.connectors.oracle_fusion.contract import contract
from billbridge.connectors.oracle_fusion.mapping import OracleSettings, any_of, quoted
from billbridge.connectors.paging import PageGuard, chunks

INVOICES = f"{FSCM}/receivablesInvoices"
RECEIPTS = f"{FSCM}/standardReceipts"
LOOKUP_CHUNK = 20


class OracleInvoiceSource:
    def __init__(self, client: OracleClient, settings: OracleSettings | None = None, *,
                 name: str = "oracle-fusion", page_size: int | None = None) -> None:
        self.name = name
        self.client = client
        self.settings = settings or OracleSettings()
        self.page_size = max(1, page_size or client.page_size)
        self.contracts = ContractWatch(contract(self.settings))

    def _own(self) -> str:
        return f"TransactionSource = {quoted(self.settings.invoice_source)}"

    def poll(self, cursor: str | None) -> Iterator[PollPage]:
        state: dict[str, list[Any]] = json.loads(cursor) if cursor else {}
        streams = {"invoices": (INVOICES, "CustomerTransactionId", self._own(), None),
                   "receipts": (RECEIPTS, "StandardReceiptId", None,
                                self.settings.receipt_references)}
        for stream, (path, key, own, expand) in streams.items():
            for rows in self._pages(path, key, own, expand, state.get(stream)):
                invoices = rows if stream == "invoices" else self._paid_invoices(rows)
                state[stream] = [rows[-1].get(self.settings.modified_field), rows[-1].get(key)]
                yield PollPage(self._events(invoices), json.dumps(state, sort_keys=True))

    def _pages(self, path: str, key: str, own: str | None, expand: str | None,
               since: list[Any] | None) -> Iterator[list[dict[str, Any]]]:
        stamp = self.settings.modified_field
        guard = PageGuard(f"oracle-fusion {path.rsplit('/', 1)[-1]} changed")
        position = tuple(since) if since else None
        while True:
            terms = [own] if own else []
            if position is not None:
                terms.append(f"({stamp} > {quoted(position[0])} or ({stamp} = "
                             f"{quoted(position[0])} and {key} > {position[1]}))")
            guard.once(position, f"the page after {position}", repeat="read")
            params = {"expand": expand} if expand else {}
            answer = self.client.page(path, f"{path.rsplit('/', 1)[-1]} changed",
                                      q=" and ".join(terms) or None,
                                      order_by=f"{stamp}:asc,{key}:asc",
                                      limit=self.page_size, params=params)
            rows = [r for r in answer["items"] if isinstance(r, dict)]
            if not rows:
                return
            yield rows
            served = int(answer.get("limit") or self.page_size)
            if len(rows) < served and answer.get("hasMore") is not True:
                return
            position = (rows[-1].get(stamp), rows[-1].get(key))

    def _paid_invoices(self, receipts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The hub's invoices these receipts name, as they stand now."""
        self.contracts.read_all("receipt", receipts)
        numbers = sorted({str(ref.get("ReferenceNumber")) for receipt in receipts
                          for ref in _children(receipt, self.settings.receipt_references)
                          if ref.get("ReferenceNumber")})
        found: list[dict[str, Any]] = []
        for chunk in chunks(numbers, LOOKUP_CHUNK):
            found += self.client.items(INVOICES, "invoices paid",
                                       q=f"({any_of('TransactionNumber', chunk)}) and "
                                         f"{self._own()}")
        return found

    def _events(self, invoices: list[dict[str, Any]]) -> list[dict[str, Any] | Malformed]:
        out: list[dict[str, Any] | Malformed] = []
        for row in invoices:
            drift = self.contracts.read("invoice", row)
            event = mapping.status_event(row, settings=self.settings, source=self.name)
            if event is not None:
                out.append(name_drift(event, drift))
        return out


def _children(row: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """An expanded child: a list (framework 1–2) or a collection with items (3+)."""
    value = row.get(name)
    if isinstance(value, dict):
        value = value.get("items")
    return [v for v in value or [] if isinstance(v, dict)]
