"""Xero as the ERP ``Target``: customers, projects, labour postings,
reversals and invoices, each kind in one call of up to 50 elements.

Xero's ``Idempotency-Key`` answers a repeat of the *same request* only, and
the dispatcher resends a command after a fault in a differently made batch.
So every record carries a marker that a resend looks up first (only when
``command.attempt > 1``, so first sends cost nothing extra): a contact its
``ContactNumber``, an invoice its ``InvoiceNumber``, a journal the command's
key in its narration. Project options are found by name before any write,
since a project code is the option's identity. See docs/connectors/xero.md.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import date
from typing import Any

from billbridge.connectors.base import (
    ERP_REFERENCES,
    LivePosting,
    OutboundCommand,
    PermanentError,
    RecordResult,
    ResultStatus,
)
from billbridge.connectors.erp import ErpTarget
from billbridge.connectors.fields import (
    MARKER,
    build_each,
    marker,
    posting_to_reverse,
    required_ref,
)
from billbridge.connectors.kinds import send_by_kind
from billbridge.connectors.paging import chunks
from billbridge.connectors.xero import mapping
from billbridge.connectors.xero.client import (
    BATCH_LIMIT,
    PAGE_SIZE,
    XeroClient,
    call_key,
    identity,
    quoted,
    to_wire,
)
from billbridge.connectors.xero.mapping import XeroSettings

LOOKUP_CHUNK = 20  # markers per look-up, to keep the where filter (and URL) short
MAX_READ_PAGES = 10_000  # a million journals: past that, a page that never ends
Mapped = list[tuple[OutboundCommand, dict[str, Any]]]


_result = RecordResult.of



def _any_of(field: str, values: Iterable[str], call: str = "==") -> str:
    if call == "==":
        return " OR ".join(f"{field}=={quoted(v)}" for v in values)
    return " OR ".join(f"{field}.{call}({quoted(v)})" for v in values)


class XeroTarget(ErpTarget[XeroClient, XeroSettings]):
    references = ERP_REFERENCES  # the payload fields it resolves through refs

    def __init__(self, client: XeroClient, settings: XeroSettings | None = None, *,
                 name: str = "xero", max_batch: int = BATCH_LIMIT,
                 today: Callable[[], date] | None = None, concurrency: int = 1) -> None:
        super().__init__(client, settings or XeroSettings(), name=name,
                         max_batch=min(max_batch, BATCH_LIMIT), today=today,
                         concurrency=concurrency)
        # The dispatcher may call from several threads: what is read once per
        # target (the project category, the base currency) is read by one.
        self._once = threading.RLock()
        self.found_by_marker = 0  # resends answered by a look-up instead of a write
        self._category: str | None = None
        self._currency = self.settings.base_currency
        self._handlers: dict[str, Callable[[Sequence[OutboundCommand]], list[RecordResult]]] = {
            "customer.upsert": self._customers, "project.upsert": self._projects,
            "time_charge.post": self._postings, "time_charge.reverse": self._reversals,
            "invoice.create": self._invoices}

    def send(self, batch: Sequence[OutboundCommand]) -> list[RecordResult]:
        """One call per kind (``connectors.kinds``: a kind failing after an
        earlier kind's write answers RETRY rather than raising)."""
        return send_by_kind(batch, self._handlers, writes=lambda: self.client.writes,
                            vendor="Xero")

    # -- the shared steps: map, look up resends, write the rest -----------------------
    def _mapped(self, commands: Sequence[OutboundCommand],
                build: Callable[[OutboundCommand], dict[str, Any]],
                results: list[RecordResult]) -> Mapped:
        return build_each(commands, lambda c: to_wire(build(c)), results)

    def _resent(self, mapped: Mapped, marker: Callable[[OutboundCommand, dict[str, Any]], str],
                find: Callable[[list[str]], dict[str, str]],
                results: list[RecordResult]) -> Mapped:
        """Look up the markers of resent commands; answer the ones found and
        return what still has to be written."""
        resent: dict[str, list[OutboundCommand]] = {}
        for command, record in mapped:
            if command.attempt > 1:
                resent.setdefault(marker(command, record), []).append(command)
        found = find(list(resent)) if resent else {}
        for value, external_id in found.items():
            for command in resent.get(value, []):
                with self._counting:  # a dispatcher's threads share the target
                    self.found_by_marker += 1
                results.append(_result(command, ResultStatus.APPLIED, external_id))
        return [(c, r) for c, r in mapped if c.attempt == 1 or marker(c, r) not in found]

    def _write(self, method: str, path: str, collection: str, id_field: str, mapped: Mapped,
               results: list[RecordResult]) -> None:
        if not mapped:
            return
        key = call_key(method, path, (c.idempotency_key for c, _r in mapped))
        elements = self.client.write(method, path, collection, [r for _c, r in mapped],
                                     idempotency_key=key)
        for (command, _record), element in zip(mapped, elements, strict=True):
            problems = [str(e.get("Message")) for e in element.get("ValidationErrors") or []]
            if problems or element.get("StatusAttributeString") == "ERROR":
                results.append(_result(command, ResultStatus.REJECTED, code="ValidationException",
                                       message="; ".join(problems) or "refused by Xero"))
            elif not element.get(id_field):
                results.append(_result(command, ResultStatus.REJECTED, code="TARGET_PROTOCOL",
                                       message=f"Xero accepted the record but answered no "
                                       f"{id_field}; find it in Xero and link it by hand"))
            else:
                results.append(_result(command, ResultStatus.APPLIED, str(element[id_field])))

    # -- customers → Contacts -----------------------------------------------------------
    def _customers(self, commands: Sequence[OutboundCommand]) -> list[RecordResult]:
        results: list[RecordResult] = []
        mapped = self._mapped(commands, lambda c: mapping.contact(
            c.payload, c.ref("customer", c.payload.get("id"))), results)
        updates = [(c, r) for c, r in mapped if r.get("ContactID")]
        creates = self._resent([(c, r) for c, r in mapped if not r.get("ContactID")],
                               lambda _c, r: str(r["ContactNumber"]), self._contacts_by_number,
                               results)
        self._write("PUT", "/Contacts", "Contacts", "ContactID", creates, results)
        self._write("POST", "/Contacts", "Contacts", "ContactID", updates, results)
        return results

    def _contacts_by_number(self, numbers: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for chunk in chunks(numbers, LOOKUP_CHUNK):
            for contact in self.client.records("Contacts", "contact look-up", params={
                    "where": _any_of("ContactNumber", chunk), "includeArchived": "true"}):
                found.setdefault(str(contact.get("ContactNumber")), identity(contact, "ContactID"))
        return found

    # -- projects → options of the project tracking category -----------------------------
    def _category_id(self) -> str:
        with self._once:
            return self._category_or_create()

    def _category_or_create(self) -> str:
        if self._category is None:
            name = self.settings.tracking_category
            found = self.client.records("TrackingCategories", "tracking category", params={
                "where": f"Name=={quoted(name)}", "includeArchived": "true"})
            if found:
                self._category = identity(found[0], "TrackingCategoryID")
            else:
                [made] = self.client.write("PUT", "/TrackingCategories", "TrackingCategories",
                                           [{"Name": name}],
                                           idempotency_key=call_key("PUT", name, ()))
                if made.get("ValidationErrors"):
                    raise PermanentError(
                        f"xero: cannot create the tracking category {name!r} for projects: "
                        + "; ".join(str(e.get("Message")) for e in made["ValidationErrors"])
                        + " (set the connection's tracking_category to an existing one)",
                        code="TRACKING_CATEGORY")
                self._category = identity(made, "TrackingCategoryID")
        return self._category

    def _projects(self, commands: Sequence[OutboundCommand]) -> list[RecordResult]:
        results: list[RecordResult] = []
        mapped = self._mapped(commands, lambda c: mapping.tracking_option(c.payload), results)
        if not mapped:
            return results
        category = self._category_id()
        [current] = self.client.records("TrackingCategories", "project options",
                                        path=f"/TrackingCategories/{category}",
                                        params={"includeArchived": "true"}) or [{}]
        options = {str(o["Name"]).casefold(): o for o in current.get("Options") or []}
        for command, option in mapped:
            existing = options.get(option["Name"].casefold())
            if existing is not None and existing.get("Status") == option["Status"]:
                results.append(_result(command, ResultStatus.APPLIED,
                                       identity(existing, "TrackingOptionID")))
                continue
            path = f"/TrackingCategories/{category}/Options"
            if existing is not None:
                path += f"/{identity(existing, 'TrackingOptionID')}"
            self._write("POST" if existing else "PUT", path, "Options", "TrackingOptionID",
                        [(command, option)], results)
        return results

    # -- time charges → manual journals -----------------------------------------------------
    def live_postings(self, charge_ids: Sequence[str] | None = None) -> list[LivePosting]:
        """Labour journals live in Xero now: every journal whose narration
        billbridge wrote, a page (with its lines) at a time, less the voided
        and the reversed ones."""
        journals: list[dict[str, Any]] = []
        for page in range(1, MAX_READ_PAGES + 1):
            found = self.client.records("ManualJournals", "live journals", params={
                "where": 'Narration.StartsWith("billbridge ")', "page": page})
            journals += found
            if len(found) < PAGE_SIZE:
                break
        else:
            raise PermanentError(f"xero live journals: more than {MAX_READ_PAGES} pages; "
                                 "stopping instead of reading on", code="PAGINATION_LOOP")
        live = mapping.live_labour(journals, self._base_currency())
        wanted = None if charge_ids is None else set(charge_ids)
        return [p for p in live if wanted is None or p.charge in wanted]

    def _base_currency(self) -> str:
        with self._once:
            if self._currency is None:
                self._currency = self.client.base_currency()
            return self._currency

    def _journals_by_marker(self, keys: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for chunk in chunks(keys, LOOKUP_CHUNK):
            markers = [marker(k) for k in chunk]
            for journal in self.client.records("ManualJournals", "journal look-up", params={
                    "where": _any_of("Narration", markers, "Contains")}):
                seen = MARKER.search(str(journal.get("Narration") or ""))
                if seen and journal.get("Status") != "DELETED":
                    found.setdefault(seen.group(1), identity(journal, "ManualJournalID"))
        return found

    def _postings(self, commands: Sequence[OutboundCommand]) -> list[RecordResult]:
        results: list[RecordResult] = []
        currency = self._base_currency()
        mapped = self._mapped(commands, lambda c: mapping.labour_journal(
            c.payload, c.idempotency_key, self.settings, currency), results)
        mapped = self._resent(mapped, lambda c, _r: c.idempotency_key, self._journals_by_marker,
                              results)
        self._write("PUT", "/ManualJournals", "ManualJournals", "ManualJournalID", mapped,
                    results)
        return results

    def _reversals(self, commands: Sequence[OutboundCommand]) -> list[RecordResult]:
        results: list[RecordResult] = []
        pending = self._resent([(c, {}) for c in commands], lambda c, _r: c.idempotency_key,
                               self._journals_by_marker, results)
        originals = self._originals([c.ref("time_charge", c.payload.get("charge")) or ""
                                     for c, _r in pending])

        def build(command: OutboundCommand) -> dict[str, Any]:
            journal = posting_to_reverse(command, originals, what="journal", vendor="Xero")
            return mapping.reversal_journal(journal, str(command.payload.get("charge")),
                                            command.idempotency_key)

        mapped = self._mapped([c for c, _r in pending], build, results)
        self._write("PUT", "/ManualJournals", "ManualJournals", "ManualJournalID", mapped,
                    results)
        return results

    def _originals(self, journal_ids: list[str]) -> dict[str, dict[str, Any]]:
        wanted = sorted({i for i in journal_ids if i})
        found: dict[str, dict[str, Any]] = {}
        for chunk in chunks(wanted, LOOKUP_CHUNK):
            where = " OR ".join(f'ManualJournalID==Guid("{i}")' for i in chunk)
            # With a page number, as Xero lists a journal's lines only when paging.
            for journal in self.client.records("ManualJournals", "journals to reverse",
                                               params={"where": where, "page": 1}):
                found[identity(journal, "ManualJournalID")] = journal
        return found

    # -- invoices → ACCREC invoices -------------------------------------------------------------
    def _invoices(self, commands: Sequence[OutboundCommand]) -> list[RecordResult]:
        results: list[RecordResult] = []
        today = self.today()

        def build(command: OutboundCommand) -> dict[str, Any]:
            contact = required_ref(command, "customer", record="Xero contact",
                                   code="CUSTOMER_NOT_IN_XERO")
            return mapping.invoice(command.payload, contact, self.settings, today)

        mapped = self._mapped(commands, build, results)
        mapped = self._resent(mapped, lambda _c, r: str(r["InvoiceNumber"]),
                              self._invoices_by_number, results)
        self._write("PUT", "/Invoices", "Invoices", "InvoiceID", mapped, results)
        return results

    def _invoices_by_number(self, numbers: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for chunk in chunks(numbers, LOOKUP_CHUNK):
            for invoice in self.client.records("Invoices", "invoice look-up", params={
                    "InvoiceNumbers": ",".join(chunk), "createdByMyApp": "true"}):
                if invoice.get("Status") != "DELETED":
                    found.setdefault(str(invoice.get("InvoiceNumber")),
                                     identity(invoice, "InvoiceID"))
        return found

