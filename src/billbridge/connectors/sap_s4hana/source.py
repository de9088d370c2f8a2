"""Invoice status and clearing read back from SAP S/4HANA Cloud as a polled
``Source``.

SAP bills the hub's debit memo requests into billing documents
(``API_BILLING_DOCUMENT_SRV``); a document's items name the request they
bill (``ReferenceSDDocument``), whose customer reference is the canonical
invoice id. Its receivable is paid once the operational accounting item of
the document (``API_OPLACCTGDOCITEMCUBE_SRV``) has a clearing document.
Two streams, each polled from the last stamp it saw (``ge``, so a stamp
shared by several rows is read again; an event's id is the document's state,
so the inbox drops what it already holds): billing documents by their change
stamp (``SapSettings.modified_field``; no SAP change feed is polled,
more-vendors.md section 6) and accounting items by clearing date.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from billbridge.connectors.base import Malformed, PollPage
from billbridge.connectors.contracts import ContractWatch, name_drift
from billbridge.connectors.odata import literal
from billbridge.connectors.paging import chunks
from billbridge.connectors.sap_s4hana import mapping
from billbridge.connectors.sap_s4hana.client import (
    BILLING_DOCUMENT,
    CLEARING,
    DEBIT_MEMO_REQUEST,
    SapClient,
)
from billbridge.connectors.sap_s4hana.contract import contract
from billbridge.connectors.sap_s4hana.mapping import SapSettings

LOOKUP_CHUNK = 20
DOCUMENTS, ITEMS = "A_BillingDocument", "A_OperationalAcctgDocItemCube"


class SapInvoiceSource:
    def __init__(self, client: SapClient, settings: SapSettings | None = None, *,
                 name: str = "sap-s4hana") -> None:
        self.name = name
        self.client = client
        self.settings = settings or SapSettings()
        self.contracts = ContractWatch(contract(self.settings))

    def poll(self, cursor: str | None) -> Iterator[PollPage]:
        state: dict[str, str] = json.loads(cursor) if cursor else {}
        stamp = self.settings.modified_field
        documents = self.client.rows(BILLING_DOCUMENT, DOCUMENTS, "billing documents changed",
                                     params={**self._since(stamp, "datetimeoffset",
                                                           state.get("billing")),
                                             "$expand": "to_Item"})
        latest = self._latest(documents, stamp)
        if latest is not None:
            state["billing"] = latest.isoformat().replace("+00:00", "Z")
            yield PollPage(self._events(documents), json.dumps(state, sort_keys=True))
        cleared = [i for i in self.contracts.read_rows(ITEMS, self.client.rows(
            CLEARING, ITEMS, "receivables cleared",
            params=self._since("ClearingDate", "datetime", state.get("cleared"))))
                   if i.get("ClearingAccountingDocument")]
        day = self._latest(cleared, "ClearingDate")
        if day is not None:
            state["cleared"] = day.strftime("%Y-%m-%dT00:00:00")
            numbers = [str(i.get(self.settings.clearing_reference_field)) for i in cleared]
            yield PollPage(self._events(self._documents(numbers)),
                           json.dumps(state, sort_keys=True))

    @staticmethod
    def _latest(rows: list[dict[str, Any]], field: str) -> datetime | None:
        moments = [m for r in rows if (m := mapping.parse_edm_date(r.get(field))) is not None]
        return max(moments, default=None)

    @staticmethod
    def _since(field: str, kind: str, since: str | None) -> dict[str, str]:
        """Rows from ``since`` on (``ge``: the last stamp is read again), in stamp
        order; an Edm.DateTimeOffset literal names its zone, an Edm.DateTime none."""
        params = {"$orderby": field}
        if since:
            zone = "Z" if kind == "datetimeoffset" else ""
            params["$filter"] = f"{field} ge {kind}'{since.removesuffix('Z')}{zone}'"
        return params

    def _in(self, service: str, entity: str, field: str, values: Sequence[str], what: str,
            **params: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for chunk in chunks(sorted(set(values)), LOOKUP_CHUNK):
            where = " or ".join(f"{field} eq {literal(v)}" for v in chunk)
            found += self.client.rows(service, entity, what, params={"$filter": where, **params})
        return self.contracts.read_rows(entity, found) if entity != DOCUMENTS else found

    def _documents(self, numbers: Sequence[str]) -> list[dict[str, Any]]:
        return self._in(BILLING_DOCUMENT, DOCUMENTS, "BillingDocument", numbers,
                        "billing documents cleared", **{"$expand": "to_Item"})

    def _events(self, documents: list[dict[str, Any]]) -> list[dict[str, Any] | Malformed]:
        """One event per document that bills one of the hub's debit memo requests."""
        drifts = {id(d): self.contracts.read(DOCUMENTS, d) for d in documents}
        requests = {str(item.get("ReferenceSDDocument")): document.get("BillingDocument")
                    for document in documents
                    for item in (document.get("to_Item") or {}).get("results", [])
                    if item.get("ReferenceSDDocument")}
        field = self.settings.invoice_reference_field
        invoices = {str(r.get("DebitMemoRequest")): str(r.get(field) or "") for r in self._in(
            DEBIT_MEMO_REQUEST, "A_DebitMemoRequest", "DebitMemoRequest", list(requests),
            "debit memo requests billed")}
        numbers = [str(d.get("BillingDocument")) for d in documents]
        cleared = {str(i.get(self.settings.clearing_reference_field))
                   for i in self._in(CLEARING, ITEMS, self.settings.clearing_reference_field,
                                     numbers, "receivables of billing documents")
                   if i.get("ClearingAccountingDocument")}
        out: list[dict[str, Any] | Malformed] = []
        for document in documents:
            billed = [invoices.get(str(item.get("ReferenceSDDocument")), "")
                      for item in (document.get("to_Item") or {}).get("results", [])]
            invoice = next((b for b in billed if b), None)
            if invoice is None:
                continue  # not raised by billbridge
            out.append(name_drift(mapping.status_event(
                document, invoice, str(document.get("BillingDocument")) in cleared,
                settings=self.settings, source=self.name), drifts[id(document)]))
        return out
