"""SAP S/4HANA Cloud as the ERP ``Target``: business partners, enterprise
projects, timesheet records (and their cancellation) and debit memo
requests, in one ``$batch`` per OData service, one change set per command.

Kinds go one after another (``connectors.kinds.send_by_kind``): a kind
that fails once an earlier kind's write may have applied answers RETRY.

SAP documents no idempotency header (more-vendors.md section 6), and most
of these records take a number SAP assigns, so a write repeated after a lost
acknowledgement would make a twin. Each record therefore carries the hub's
reference: a business partner its ``BusinessPartnerIDByExtSystem``, a
project its ``Project`` id (the project code), a timesheet record its note
with the command's marker, a debit memo request the canonical invoice id in
``PurchaseOrderByCustomer``. Customers and projects are always looked up by
that reference first (an update needs the row's ETag for ``If-Match``); a
resent posting or invoice (``attempt > 1``) is looked up before it is
written again, and one found is answered without a write.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from billbridge.connectors.base import (
    LivePosting,
    OutboundCommand,
    RecordResult,
    ResultStatus,
)
from billbridge.connectors.erp import ErpTarget
from billbridge.connectors.fields import MappingError, required_ref
from billbridge.connectors.kinds import send_by_kind
from billbridge.connectors.odata import Answer, ChangeSetResult, Operation, key_segment, literal
from billbridge.connectors.paging import chunks
from billbridge.connectors.sap_s4hana import mapping
from billbridge.connectors.sap_s4hana.client import (
    BUSINESS_PARTNER,
    DEBIT_MEMO_REQUEST,
    ENTERPRISE_PROJECT,
    TIMESHEET,
    SapClient,
)
from billbridge.connectors.sap_s4hana.mapping import SapSettings

LOOKUP_CHUNK = 20  # references per look-up, to keep the $filter (and URL) short
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
REFERENCES = {"project.upsert": ("customer",), "time_charge.reverse": ("charge",),
              "invoice.create": ("customer",)}
PARTNERS, PROJECTS = "A_BusinessPartner", "A_EnterpriseProject"
TIMESHEETS, MEMOS = "TimeSheetEntryCollection", "A_DebitMemoRequest"
NOTE = "TimeSheetDataFields/TimeSheetNote"


@dataclass
class _Planned:
    """One command's write, the service it goes to, and how its answer names the record."""

    command: OutboundCommand
    service: str
    operation: Operation
    external_id: Callable[[Answer], str]


_result = RecordResult.of


def _created(field: str) -> Callable[[Answer], str]:
    def read(answer: Answer) -> str:
        body = answer.json()
        entity = body.get("d") if isinstance(body, dict) else None
        if not isinstance(entity, dict) or entity.get(field) in (None, ""):
            raise MappingError(f"SAP created the record but answered no {field}",
                               code="TARGET_PROTOCOL")
        return str(entity[field])
    return read


class SapTarget(ErpTarget[SapClient, SapSettings]):
    references = REFERENCES  # the payload fields it resolves through refs

    def __init__(self, client: SapClient, settings: SapSettings | None = None, *,
                 name: str = "sap-s4hana", max_batch: int = 200,
                 today: Callable[[], date] | None = None, concurrency: int = 1) -> None:
        super().__init__(client, settings or SapSettings(), name=name,
                         max_batch=min(max_batch, client.batch_limit), today=today,
                         concurrency=concurrency)
        self.found_by_reference = 0  # resends answered by a look-up instead of a write

    def send(self, batch: Sequence[OutboundCommand]) -> list[RecordResult]:
        """Kind by kind, partners before projects before time before invoices:
        each kind's look-ups, then its writes in its service's ``$batch``."""
        plans: dict[str, Callable[[list[OutboundCommand], list[RecordResult]],
                                  list[_Planned]]] = {
            "customer.upsert": self._customers, "project.upsert": self._projects,
            "time_charge.post": self._postings, "time_charge.reverse": self._reversals,
            "invoice.create": self._invoices}
        return send_by_kind(batch, {kind: self._handler(plan) for kind, plan in plans.items()},
                            writes=lambda: self.client.batches_sent, vendor="SAP S/4HANA",
                            order=tuple(plans))

    def _handler(self, plan: Callable[[list[OutboundCommand], list[RecordResult]],
                                      list[_Planned]]
                 ) -> Callable[[Sequence[OutboundCommand]], list[RecordResult]]:
        def handle(commands: Sequence[OutboundCommand]) -> list[RecordResult]:
            results: list[RecordResult] = []
            planned = plan(list(commands), results)
            for call in chunks(planned, self.max_batch):
                answers = self.client.batch(call[0].service, [[p.operation] for p in call])
                results += [self._settle(p, a) for p, a in zip(call, answers, strict=True)]
            return results
        return handle

    @staticmethod
    def _each(commands: Sequence[OutboundCommand], results: list[RecordResult],
              build: Callable[[OutboundCommand], _Planned | None]) -> list[_Planned]:
        """``build`` for each command; one it cannot map is refused on its own."""
        out: list[_Planned] = []
        for command in commands:
            try:
                planned = build(command)
            except (MappingError, ValueError) as exc:
                code = exc.code if isinstance(exc, MappingError) else "MAPPING"
                results.append(_result(command, ResultStatus.REJECTED, code=code,
                                       message=str(exc)))
                continue
            if planned is not None:
                out.append(planned)
        return out

    def _settle(self, planned: _Planned, answer: ChangeSetResult) -> RecordResult:
        command = planned.command
        if answer.answers:
            try:
                return _result(command, ResultStatus.APPLIED,
                               planned.external_id(answer.answers[0]))
            except MappingError as exc:
                return _result(command, ResultStatus.REJECTED, code=exc.code,
                               message=f"{exc}; find it in SAP and link it by hand")
        if answer.failure is None:
            return _result(command, ResultStatus.RETRY, code="NOT_REACHED",
                           message="SAP stopped the $batch before this change set")
        code, message = answer.failure.error()
        if answer.failure.status in _RETRY_STATUSES:
            return _result(command, ResultStatus.RETRY, code=f"HTTP_{answer.failure.status}",
                           message=message)
        return _result(command, ResultStatus.REJECTED, code=code,
                       message=f"SAP refused it (HTTP {answer.failure.status}): {message}")

    def _found(self, command: OutboundCommand, external_id: str,
               results: list[RecordResult]) -> None:
        with self._counting:
            self.found_by_reference += 1
        results.append(_result(command, ResultStatus.APPLIED, external_id))

    def _lookup(self, service: str, entity: str, field: str, values: Sequence[str],
                what: str) -> dict[str, dict[str, Any]]:
        """Rows whose ``field`` is one of ``values``, by that value (the first found)."""
        found: dict[str, dict[str, Any]] = {}
        for chunk in chunks(sorted(set(values)), LOOKUP_CHUNK):
            where = " or ".join(f"{field} eq {literal(v)}" for v in chunk)
            for row in self.client.rows(service, entity, what, params={"$filter": where}):
                value = mapping.flat_value(row, field)
                if value is not None:
                    found.setdefault(value, row)
        return found

    # -- customers and projects: found by reference, then updated or created ------------
    def _customers(self, commands: list[OutboundCommand], results: list[RecordResult]
                   ) -> list[_Planned]:
        def reference(command: OutboundCommand) -> str:
            return mapping.external_id(str(command.payload.get("id") or ""))

        existing = self._lookup(BUSINESS_PARTNER, PARTNERS, "BusinessPartnerIDByExtSystem",
                                [reference(c) for c in commands], "business partners by reference")

        def build(command: OutboundCommand) -> _Planned:
            row = existing.get(reference(command))
            _ref, body = mapping.customer(command.payload, self.settings, new=row is None)
            if row is None:
                return _Planned(command, BUSINESS_PARTNER, Operation("POST", PARTNERS, body),
                                _created("BusinessPartner"))
            number = str(row["BusinessPartner"])
            return _Planned(command, BUSINESS_PARTNER, Operation(
                "PATCH", key_segment(PARTNERS, {"BusinessPartner": number}), body,
                self._if_match(row)), lambda _a: number)
        return self._each(commands, results, build)

    def _projects(self, commands: list[OutboundCommand], results: list[RecordResult]
                  ) -> list[_Planned]:
        codes = [str(c.payload.get("code") or "") for c in commands]
        existing = self._lookup(ENTERPRISE_PROJECT, PROJECTS, "Project", [c for c in codes if c],
                                "enterprise projects by id")

        def build(command: OutboundCommand) -> _Planned:
            code = str(command.payload.get("code") or "")
            customer = command.payload.get("customer")
            partner = command.ref("customer", customer) if customer else None
            row = existing.get(code)
            _code, body = mapping.project(command.payload, partner, self.settings, self.today(),
                                          new=row is None)
            if row is None:
                return _Planned(command, ENTERPRISE_PROJECT, Operation("POST", PROJECTS, body),
                                _created("Project"))
            segment = f"{PROJECTS}(guid'{row['ProjectUUID']}')"
            return _Planned(command, ENTERPRISE_PROJECT, Operation(
                "PATCH", segment, body, self._if_match(row)), lambda _a: code)
        return self._each(commands, results, build)

    @staticmethod
    def _if_match(row: dict[str, Any]) -> dict[str, str]:
        tag = mapping.etag_of(row)
        return {"If-Match": tag} if tag else {}

    # -- time charges: timesheet records -------------------------------------------------
    def _postings(self, commands: list[OutboundCommand], results: list[RecordResult]
                  ) -> list[_Planned]:
        records: dict[str, dict[str, Any]] = {}
        for command in self._each(commands, results, lambda c: _Planned(
                c, TIMESHEET, Operation("POST", TIMESHEETS, mapping.timesheet(
                    c.payload, c.idempotency_key, self.settings)), self._record_id)):
            records[command.command.idempotency_key] = dict(command.operation.body or {})
        note = {k: r["TimeSheetDataFields"]["TimeSheetNote"] for k, r in records.items()}
        resent = [note[c.idempotency_key] for c in commands
                  if c.attempt > 1 and c.idempotency_key in note]
        found = self._lookup(TIMESHEET, TIMESHEETS, NOTE, resent, "timesheet records by marker")

        def build(command: OutboundCommand) -> _Planned | None:
            row = found.get(note[command.idempotency_key])
            if row is not None:
                self._found(command, mapping.record_id(row), results)
                return None
            return _Planned(command, TIMESHEET, Operation(
                "POST", TIMESHEETS, records[command.idempotency_key]), self._record_id)
        return self._each([c for c in commands if c.idempotency_key in records], results, build)

    @staticmethod
    def _record_id(answer: Answer) -> str:
        body = answer.json()
        entity = body.get("d") if isinstance(body, dict) else None
        if not isinstance(entity, dict) or not entity.get("TimeSheetRecord"):
            raise MappingError("SAP created the timesheet record but answered no "
                               "TimeSheetRecord", code="TARGET_PROTOCOL")
        return mapping.record_id(entity)

    def _reversals(self, commands: list[OutboundCommand], results: list[RecordResult]
                   ) -> list[_Planned]:
        """A reversal cancels the record it undoes; a record no longer there was
        cancelled already (an earlier attempt whose answer was lost)."""
        wanted = {c.idempotency_key: c.ref("time_charge", c.payload.get("charge"))
                  for c in commands}
        live = self._records([w for w in wanted.values() if w])

        def build(command: OutboundCommand) -> _Planned | None:
            external = wanted[command.idempotency_key]
            if not external or mapping.record_key(external) is None:
                raise MappingError(f"charge {command.payload.get('charge')} has no SAP "
                                   "timesheet record to cancel (it was never posted)",
                                   code="NOTHING_TO_REVERSE")
            row = live.get(external)
            if row is None:
                self._found(command, external, results)
                return None
            return _Planned(command, TIMESHEET, Operation(
                "POST", TIMESHEETS, mapping.cancellation(row, self.settings)),
                lambda _a: external)
        return self._each(commands, results, build)

    def _records(self, externals: Sequence[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for chunk in chunks(sorted(set(externals)), LOOKUP_CHUNK):
            terms = []
            for external in chunk:
                key = mapping.record_key(external)
                if key is not None:
                    terms.append("(" + " and ".join(f"{k} eq {literal(v)}"
                                                    for k, v in key.items()) + ")")
            if terms:
                for row in self.client.rows(TIMESHEET, TIMESHEETS, "records to cancel",
                                            params={"$filter": " or ".join(terms)}):
                    found[mapping.record_id(row)] = row
        return found

    def live_postings(self, charge_ids: Sequence[str] | None = None) -> list[LivePosting]:
        """Labour live in SAP now: every timesheet record billbridge wrote
        (its note says so) that is not cancelled."""
        rows = self.client.rows(TIMESHEET, TIMESHEETS, "live timesheet records", params={
            "$filter": f"CompanyCode eq {literal(self.settings.company_code)}"})
        wanted = None if charge_ids is None else set(charge_ids)
        return [p for p in mapping.live_labour(rows) if wanted is None or p.charge in wanted]

    # -- invoices: debit memo requests ---------------------------------------------------
    def _invoices(self, commands: list[OutboundCommand], results: list[RecordResult]
                  ) -> list[_Planned]:
        field = self.settings.invoice_reference_field
        resent = [str(c.payload.get("id")) for c in commands if c.attempt > 1]
        found = self._lookup(DEBIT_MEMO_REQUEST, MEMOS, field, resent,
                             "debit memo requests by reference")

        def build(command: OutboundCommand) -> _Planned | None:
            row = found.get(str(command.payload.get("id")))
            if row is not None:
                self._found(command, str(row["DebitMemoRequest"]), results)
                return None
            sold_to = required_ref(command, "customer", record="SAP business partner",
                                   code="CUSTOMER_UNKNOWN")
            return _Planned(command, DEBIT_MEMO_REQUEST, Operation(
                "POST", MEMOS, mapping.debit_memo_request(command.payload, sold_to,
                                                          self.settings)),
                _created("DebitMemoRequest"))
        return self._each(commands, results, build)
