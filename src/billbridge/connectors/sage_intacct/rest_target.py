"""Sage Intacct as the ERP ``Target`` and invoice-status ``Source`` over the
REST API (connection option ``api`` = ``rest``).

The records, the batching and the settling are the gateway target's
(``IntacctTarget``); what differs is the wire: a batch is one
``/services/core/composite`` call per entity, each command a subrequest whose
``Idempotency-Key`` is the command's idempotency key, and look-ups are
``/services/core/query`` calls whose rows ``rest_mapping`` turns back into
the gateway's records. What Intacct does with a key it has seen is
unverified, so a resend still looks up what it wrote first
(``resend_lookup``) unless ``trust_idempotency_key`` says the key is enough;
a refused create is looked up either way.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date
from typing import Any

from billbridge.connectors.base import (
    Connection,
    IdempotencyMode,
    Malformed,
    OutboundCommand,
    PollPage,
    RateLimit,
    RecordResult,
)
from billbridge.connectors.clients import ClientCache
from billbridge.connectors.contracts import ContractWatch, name_drift
from billbridge.connectors.fields import marker
from billbridge.connectors.paging import PageGuard, chunks
from billbridge.connectors.sage_intacct import mapping
from billbridge.connectors.sage_intacct import rest_mapping as rm
from billbridge.connectors.sage_intacct.client import Result
from billbridge.connectors.sage_intacct.contract import rest_contract
from billbridge.connectors.sage_intacct.mapping import IntacctSettings, external, split
from billbridge.connectors.sage_intacct.rest import IntacctRestClient, Subrequest, rest_url
from billbridge.connectors.sage_intacct.source import FIELDS as INVOICE_FIELDS
from billbridge.connectors.sage_intacct.target import (
    ENTRY_FIELDS,
    LOOKUP_CHUNK,
    IntacctTarget,
    _Planned,
    by_marker,
)

IDS = {"customer.upsert": ("CUSTOMER", "CUSTOMERID"), "project.upsert": ("PROJECT", "PROJECTID"),
       "invoice.create": ("ARINVOICE", "RECORDID")}
ID_FIELD = dict(IDS.values())
_CLIENTS: ClientCache[IntacctRestClient] = ClientCache()


def _path(obj: str) -> str:
    return f"/objects/{rm.OBJECTS[obj]}"


class IntacctRestTarget(IntacctTarget):
    def __init__(self, client: IntacctRestClient, settings: IntacctSettings | None = None,
                 rest: rm.IntacctRestSettings | None = None, *, name: str = "sage-intacct",
                 max_batch: int = 100, today: Callable[[], date] | None = None,
                 concurrency: int = 1) -> None:
        self.rest = rest or rm.IntacctRestSettings()
        settings = settings or IntacctSettings()
        if self.rest.trust_idempotency_key:
            settings = dataclasses.replace(settings, resend_lookup=False)
        # The gateway target's own calls (rate_limit, throttle_wait) the REST
        # client has too; every method that speaks to Intacct is overridden here.
        super().__init__(client, settings, name=name,  # type: ignore[arg-type]
                         max_batch=max_batch, today=today, concurrency=concurrency)
        self.rest_client = client
        if self.rest.trust_idempotency_key:  # Intacct deduplicates on our key
            self.idempotency = IdempotencyMode.NATIVE
        self._keys: dict[tuple[str, str, str], str] = {}  # (object, id, entity) → key
        self._keying = threading.Lock()

    def send(self, batch: Sequence[OutboundCommand]) -> list[RecordResult]:
        self._learn_keys(batch)
        return super().send(batch)

    # -- the wire --------------------------------------------------------------------
    def _execute(self, plans: Sequence[_Planned], location: str) -> Sequence[Result]:
        return self.rest_client.composite([p.request for p in plans], location=location,
                                          what=f"{len(plans)} writes")

    def _write(self, command: OutboundCommand, obj: str, fields: dict[str, Any],
               known: bool, location: str) -> Subrequest:
        """A create keyed by the command; an update (a PATCH of the record's
        key, which repeats harmlessly) keyed by its attempt."""
        body = rm.rest_of(rm.FIELDS[obj], fields)
        ident = str(fields[ID_FIELD[obj]])
        with self._keying:
            key = self._keys.get((obj, ident, location))
        if known and key:
            return Subrequest("PATCH", f"{_path(obj)}/{key}", body,
                              f"{command.idempotency_key}-{command.attempt}")
        return Subrequest("POST", _path(obj), body, command.idempotency_key)

    def _timesheet(self, command: OutboundCommand, sheet: dict[str, Any]) -> Subrequest:
        return Subrequest("POST", _path("TIMESHEET"), rm.timesheet_body(sheet),
                          command.idempotency_key)

    @staticmethod
    def _sheet_id(location: str) -> Callable[[Result], str | None]:
        return lambda r: external(r.key, location) if r.key else None

    def _create_invoice(self, command: OutboundCommand, body: dict[str, Any]) -> Subrequest:
        return Subrequest("POST", _path("ARINVOICE"), rm.invoice_body(body),
                          command.idempotency_key)

    # -- reads -----------------------------------------------------------------------
    def _rows(self, obj: str, names: Sequence[str], filters: list[dict[str, Any]],
              location: str, expression: str = "and") -> list[dict[str, Any]]:
        rows = self.rest_client.query_all(rm.OBJECTS[obj], rm.fields_of(obj, list(names)),
                                          filters=filters, expression=expression,
                                          order=("key",), location=location)
        return rm.rows_of(obj, rows)

    def _learn_keys(self, batch: Sequence[OutboundCommand]) -> None:
        """The keys of the customers and projects the batch updates (a PATCH
        names the key; the hub keeps the id)."""
        wanted: dict[tuple[str, str], set[str]] = {}
        for command in batch:
            if command.kind not in ("customer.upsert", "project.upsert"):
                continue
            kind = command.kind.split(".")[0]
            ref = command.ref(kind, command.payload.get("id" if kind == "customer" else "code"))
            if ref:
                ident_, location = split(ref)
                wanted.setdefault((IDS[command.kind][0], location), set()).add(ident_)
        for (obj, location), idents in wanted.items():
            with self._keying:
                idents = {i for i in idents if (obj, i, location) not in self._keys}
            for chunk in chunks(sorted(idents), LOOKUP_CHUNK):
                name = ID_FIELD[obj]
                for row in self._rows(obj, ["RECORDNO", name],
                                      [{"$in": {"id": list(chunk)}}], location):
                    with self._keying:
                        self._keys[(obj, str(row[name]), location)] = str(row["RECORDNO"])

    def _find(self, kind: str, location: str, keys: list[str]) -> dict[str, str]:
        if kind in IDS:
            obj, name = IDS[kind]
            path = "invoiceNumber" if obj == "ARINVOICE" else "id"
            rows = self._rows(obj, ["RECORDNO", name], [{"$in": {path: keys}}], location)
            held = "RECORDNO" if obj == "ARINVOICE" else name
            return {str(r[name]): external(str(r[held]), location) for r in rows}
        return by_marker(self._rows("TIMESHEETENTRY", ["TIMESHEETKEY", "DESCRIPTION"],
                                    [{"$contains": {"description": marker(k)}} for k in keys],
                                    location, expression="or"), location)

    def _entries(self, location: str, sheets: list[str] | None) -> list[dict[str, Any]]:
        filters = [{"$in": {"timesheet.key": sheets}}] if sheets is not None else \
            [{"$startsWith": {"description": "billbridge "}}]
        return self._rows("TIMESHEETENTRY", ENTRY_FIELDS, filters, location)


class IntacctRestInvoiceSource:
    """The hub's AR invoices changed since the cursor (the REST modified
    stamp, ``rest_modified_field``), read again from the last one seen."""

    def __init__(self, client: IntacctRestClient, settings: IntacctSettings | None = None,
                 rest: rm.IntacctRestSettings | None = None, *, name: str = "sage-intacct",
                 page_size: int = 1000) -> None:
        self.name = name
        self.client = client
        self.settings = settings or IntacctSettings()
        self.rest = rest or rm.IntacctRestSettings()
        self.page_size = max(1, min(page_size, 2000))
        self.contracts = ContractWatch(rest_contract(self.rest.rest_modified_field))

    def poll(self, cursor: str | None) -> Iterator[PollPage]:
        stamp = self.rest.rest_modified_field
        filters: list[dict[str, Any]] = [{"$startsWith": {"description": "billbridge "}}]
        if cursor:
            filters.append({"$gte": {stamp: rm.cursor_as(cursor, "rest")}})
        location = "" if self.settings.entities else self.settings.location_id
        fields = [*rm.fields_of("ARINVOICE", INVOICE_FIELDS), stamp]
        guard = PageGuard(f"sage-intacct invoices since {cursor or 'the start'}")
        start = 1
        while True:
            guard.once(start)
            page = self.client.query(rm.OBJECTS["ARINVOICE"], fields, filters=filters,
                                     order=(stamp, "key"), start=start, size=self.page_size,
                                     location=location)
            if not page.records:
                return
            events: list[dict[str, Any] | Malformed] = []
            for raw, row in zip(page.records, rm.rows_of("ARINVOICE", page.records),
                                strict=True):
                drift = self.contracts.read("ARINVOICE", raw)
                event = mapping.status_event(self._stamped(raw, row), settings=self.settings,
                                             source=self.name)
                if event is not None:
                    events.append(name_drift(event, drift))
            yield PollPage(events, str(page.records[-1].get(stamp) or "") or cursor)
            if page.remaining <= 0:
                return
            start += len(page.records)

    def _stamped(self, raw: Mapping[str, Any], row: dict[str, Any]) -> dict[str, Any]:
        value = raw.get(self.rest.rest_modified_field)
        try:
            row[self.settings.modified_field] = rm.stamp_of(value) if value else ""
        except ValueError:
            row[self.settings.modified_field] = str(value)
        return row


# -- the connection ------------------------------------------------------------------

def rest_client_for(connection: Connection) -> IntacctRestClient:
    """One client per company and OAuth client, shared by target and source."""
    secrets, options = connection.credentials, connection.options
    url = rest_url(connection.base_url)
    per_second = float(options.get("requests_per_second") or 5)
    concurrency = int(options.get("concurrency") or 2)
    return _CLIENTS.get(
        (connection.name, url, secrets.get("client_id")),
        lambda: IntacctRestClient(
            url, client_id=secrets.get("client_id", ""),
            client_secret=secrets.get("client_secret", ""),
            username=secrets.get("username", ""),
            rate_limit=RateLimit(per_second, 1.0, burst=max(1, concurrency)),
            concurrency=concurrency, throttle_wait=float(options.get("throttle_wait") or 5.0),
            timeout=float(options.get("timeout") or 60.0)))


def rest_target(connection: Connection, settings: IntacctSettings,
                concurrency: int) -> IntacctRestTarget:
    return IntacctRestTarget(rest_client_for(connection), settings,
                             rm.IntacctRestSettings.from_options(connection.options),
                             name=connection.name,
                             max_batch=int(connection.options.get("batch_size") or 100),
                             concurrency=concurrency)


def rest_source(connection: Connection, settings: IntacctSettings) -> IntacctRestInvoiceSource:
    return IntacctRestInvoiceSource(rest_client_for(connection), settings,
                                    rm.IntacctRestSettings.from_options(connection.options),
                                    name=connection.name,
                                    page_size=int(connection.options.get("page_size") or 1000))
