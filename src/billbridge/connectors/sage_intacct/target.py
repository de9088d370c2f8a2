"""Sage Intacct as the ERP ``Target``: customers, projects, labour
timesheets, reversals and AR invoices, many functions to a request.

Each command is one ``<function>`` whose ``controlid`` is its idempotency
key; a batch is one request per entity (its session's ``locationid``), and
each command is settled on its own function's result, so a refused record
rejects only itself. Requests that write carry ``uniqueid``: Intacct refuses
to run again a function whose ``controlid`` it completed before. What an
earlier attempt wrote is found again by its key: the customer's id, the
project's code, the invoice number, or the marker in a timesheet's
description; resends look first (``resend_lookup``), and any write Intacct
refuses is looked up before it is called rejected, so a refusal of a replay
(whatever its wording) settles as applied.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from billbridge.connectors.base import (
    ERP_REFERENCES,
    DeliveryError,
    LivePosting,
    OutboundCommand,
    RecordResult,
    ResultStatus,
)
from billbridge.connectors.erp import ErpTarget, plan_of
from billbridge.connectors.fields import MARKER, MappingError, marker, named, posting_to_reverse
from billbridge.connectors.paging import chunks
from billbridge.connectors.sage_intacct import mapping
from billbridge.connectors.sage_intacct.client import (
    Function,
    IntacctClient,
    Result,
    element,
)
from billbridge.connectors.sage_intacct.mapping import IntacctSettings, external, split

LOOKUP_CHUNK = 50
ENTRY_FIELDS = ("RECORDNO", "TIMESHEETKEY", "EMPLOYEEID", "ENTRYDATE", "QTY", "PROJECTID",
                "BILLABLE", "DESCRIPTION", "MEGAENTITYID")
_result = RecordResult.of


@dataclass(frozen=True, slots=True)
class _Planned:
    command: OutboundCommand
    location: str
    request: Any  # the gateway's Function, or a REST Subrequest
    key: str  # what finds the record again: its id, code, invoice number or marker
    external_id: Callable[[Result], str | None]
    creates: bool = True  # an update is settled on its own answer, never looked up


def _first(result: Result, field: str) -> str | None:
    records = result.records()
    value = records[0].get(field) if records else None
    return str(value) if value else None


class IntacctTarget(ErpTarget[IntacctClient, IntacctSettings]):
    references = ERP_REFERENCES  # the canonical commands' own shape

    def __init__(self, client: IntacctClient, settings: IntacctSettings | None = None, *,
                 name: str = "sage-intacct", max_batch: int = 100,
                 today: Callable[[], date] | None = None, concurrency: int = 1) -> None:
        super().__init__(client, settings or IntacctSettings(), name=name, max_batch=max_batch,
                         today=today, concurrency=concurrency)
        self.found_by_marker = 0  # resends or refused writes answered by a look-up
        self._plans: dict[str, Callable[[OutboundCommand], _Planned]] = {
            "customer.upsert": self._customer, "project.upsert": self._project,
            "time_charge.post": self._posting, "invoice.create": self._invoice}

    # -- a batch ----------------------------------------------------------------------
    def send(self, batch: Sequence[OutboundCommand]) -> list[RecordResult]:
        results: list[RecordResult] = []
        reversals = [c for c in batch if c.kind == "time_charge.reverse"]
        originals = self._originals(reversals) if reversals else {}
        planned: list[_Planned] = []
        for command in batch:
            try:
                planned.append(self._reversal(command, originals)
                               if command.kind == "time_charge.reverse" else self._plan(command))
            except (MappingError, ValueError) as exc:
                code = exc.code if isinstance(exc, MappingError) else "MAPPING"
                results.append(_result(command, ResultStatus.REJECTED, code=code,
                                       message=str(exc)))
        if self.settings.resend_lookup:
            planned = self._found_again(planned, results)
        by_location: dict[str, list[_Planned]] = {}
        for plan in planned:
            by_location.setdefault(plan.location, []).append(plan)
        settled = False
        for location, plans in by_location.items():
            try:
                answers = self._execute(plans, location)
            except DeliveryError as exc:
                if not settled:
                    raise
                # An earlier entity's request is settled: keep its results and
                # retry this entity's commands alone, rather than fail the call.
                results += [_result(p.command, ResultStatus.RETRY, code=exc.code,
                                    message=str(exc), retry_after=exc.retry_after)
                            for p in plans]
                continue
            results += self._settle(list(zip(plans, answers, strict=True)))
            settled = True
        return results

    def _execute(self, plans: Sequence[_Planned], location: str) -> Sequence[Result]:
        """One request of the entity's writes; an answer for each, in order."""
        return self.client.execute([p.request for p in plans], location=location,
                                   write=True, what=f"{len(plans)} writes")

    def _plan(self, command: OutboundCommand) -> _Planned:
        return plan_of(self._plans, command, vendor="Sage Intacct")

    def _settle(self, answered: Sequence[tuple[_Planned, Result]]) -> list[RecordResult]:
        out: list[RecordResult] = []
        refused: list[tuple[_Planned, Result]] = []
        for plan, result in answered:
            if result.ok:
                made = plan.external_id(result)
                out.append(_result(plan.command, ResultStatus.APPLIED, made) if made else
                           _result(plan.command, ResultStatus.REJECTED, code="TARGET_PROTOCOL",
                                   message="Intacct created the record but answered no key; "
                                   "find it in Intacct and link it by hand"))
            elif result.throttled:
                out.append(_result(plan.command, ResultStatus.RETRY, code="RATE_LIMITED",
                                   message=result.message(),
                                   retry_after=self.client.throttle_wait))
            else:
                refused.append((plan, result))
        # A refused create may be one that ran before (uniqueid's refusal of a
        # replay, or an id that exists): it is applied if its key finds it.
        found = self._lookup([plan for plan, _r in refused if plan.creates])
        for plan, result in refused:
            if plan.creates and plan.key in found:
                self._count()
                out.append(_result(plan.command, ResultStatus.APPLIED, found[plan.key]))
            else:
                code = result.errors[0].errorno if result.errors else "TARGET_REJECTED"
                out.append(_result(plan.command, ResultStatus.REJECTED, code=code or
                                   "TARGET_REJECTED", message=f"Intacct refused it: "
                                   f"{result.message()}"))
        return out

    def _count(self) -> None:
        with self._counting:  # a dispatcher's threads share the target
            self.found_by_marker += 1

    # -- finding what an earlier attempt wrote -----------------------------------------
    def _found_again(self, planned: list[_Planned], results: list[RecordResult]
                     ) -> list[_Planned]:
        resent = [p for p in planned if p.command.attempt > 1 and p.creates]
        if not resent:
            return planned
        found = self._lookup(resent)
        for plan in resent:
            if plan.key in found:
                self._count()
                results.append(_result(plan.command, ResultStatus.APPLIED, found[plan.key]))
        return [p for p in planned if not (p in resent and p.key in found)]

    def _lookup(self, plans: Sequence[_Planned]) -> dict[str, str]:
        """ERP ids of the records ``plans`` write, by their keys, where Intacct has them."""
        groups: dict[tuple[str, str], list[str]] = {}
        for plan in plans:
            groups.setdefault((plan.command.kind, plan.location), []).append(plan.key)
        found: dict[str, str] = {}
        for (kind, location), keys in groups.items():
            for chunk in chunks(sorted(set(keys)), LOOKUP_CHUNK):
                found.update(self._find(kind, location, list(chunk)))
        return found

    def _find(self, kind: str, location: str, keys: list[str]) -> dict[str, str]:
        query = self.client.query_all
        if kind == "customer.upsert":
            rows = query("CUSTOMER", ["CUSTOMERID"], where=_in("CUSTOMERID", keys),
                         location=location)
            return {r["CUSTOMERID"]: external(r["CUSTOMERID"], location) for r in rows}
        if kind == "project.upsert":
            rows = query("PROJECT", ["PROJECTID"], where=_in("PROJECTID", keys),
                         location=location)
            return {r["PROJECTID"]: external(r["PROJECTID"], location) for r in rows}
        if kind == "invoice.create":
            rows = query("ARINVOICE", ["RECORDNO", "RECORDID"], where=_in("RECORDID", keys),
                         location=location)
            return {r["RECORDID"]: external(r["RECORDNO"], location) for r in rows}
        return by_marker(query("TIMESHEETENTRY", ["TIMESHEETKEY", "DESCRIPTION"], where=_any_like(
            "DESCRIPTION", [f"%{marker(k)}%" for k in keys]), location=location), location)

    # -- customers and projects: keyed by the canonical id and the project code ---------
    def _write(self, command: OutboundCommand, obj: str, fields: dict[str, Any],
               known: bool, location: str) -> Any:
        """A create keyed by the command (uniqueid refuses its replay); an
        update, which repeats harmlessly, keyed by its attempt, so a resend runs."""
        if not known:
            return Function(command.idempotency_key, element("create", {obj: fields}))
        return Function(f"{command.idempotency_key}-{command.attempt}",
                        element("update", {obj: fields}))

    def _customer(self, command: OutboundCommand) -> _Planned:
        location, fields = mapping.customer(command.payload, self.settings)
        known = command.ref("customer", command.payload.get("id"))
        if known:
            location = split(known)[1]
        ident = str(fields["CUSTOMERID"])
        return _Planned(command, location, self._write(command, "CUSTOMER", fields, bool(known),
                                                      location),
                        ident, lambda _r: external(ident, location), creates=not known)

    def _project(self, command: OutboundCommand) -> _Planned:
        customer = command.payload.get("customer")
        ref = command.ref("customer", customer) if customer else None
        customer_id, location = split(ref) if ref else (
            str(customer) if customer else None, self.settings.location_id)
        fields = mapping.project(command.payload, customer_id)
        known = command.ref("project", command.payload.get("code"))
        code = str(fields["PROJECTID"])
        return _Planned(command, location, self._write(command, "PROJECT", fields, bool(known),
                                                      location),
                        code, lambda _r: external(code, location), creates=not known)

    # -- time charges: a timesheet of one entry ------------------------------------------
    def _posting(self, command: OutboundCommand) -> _Planned:
        project = str(command.payload.get("project") or "")
        ref = command.ref("project", project)
        project_id, location = split(ref) if ref else (project, self.settings.location_id)
        sheet = mapping.timesheet(command.payload, command.idempotency_key, self.settings,
                                  project_id)
        return _Planned(command, location, self._timesheet(command, sheet),
                        command.idempotency_key, self._sheet_id(location))

    def _timesheet(self, command: OutboundCommand, sheet: dict[str, Any]) -> Any:
        return Function(command.idempotency_key, element("create", {"TIMESHEET": sheet}))

    @staticmethod
    def _sheet_id(location: str) -> Callable[[Result], str | None]:
        return lambda r: external(key, location) if (key := _first(r, "RECORDNO")) else None

    def _originals(self, reversals: Sequence[OutboundCommand]) -> dict[str, dict[str, Any]]:
        """The timesheet entries the reversals undo, by the ERP id the hub keeps."""
        wanted: dict[str, set[str]] = {}
        for command in reversals:
            ref = command.ref("time_charge", command.payload.get("charge"))
            if ref:
                sheet, location = split(ref)
                wanted.setdefault(location, set()).add(sheet)
        found: dict[str, dict[str, Any]] = {}
        for location, sheets in wanted.items():
            for chunk in chunks(sorted(sheets), LOOKUP_CHUNK):
                for row in self._entries(location, list(chunk)):
                    found.setdefault(external(str(row["TIMESHEETKEY"]), location), row)
        return found

    def _entries(self, location: str, sheets: list[str] | None) -> list[dict[str, Any]]:
        """The ``TIMESHEETENTRY`` rows of ``sheets``, or every one billbridge wrote."""
        where = _in("TIMESHEETKEY", sheets) if sheets is not None else \
            {"like": {"field": "DESCRIPTION", "value": "billbridge %"}}
        return self.client.query_all("TIMESHEETENTRY", ENTRY_FIELDS, where=where,
                                     order=("RECORDNO",), location=location)

    def _reversal(self, command: OutboundCommand,
                  originals: dict[str, dict[str, Any]]) -> _Planned:
        charge = str(command.payload.get("charge"))
        original = posting_to_reverse(command, originals, what="timesheet", vendor="Intacct")
        location = split(command.ref("time_charge", charge) or "")[1]
        sheet = mapping.reversal(original, charge, command.idempotency_key, self.settings)
        return _Planned(command, location, self._timesheet(command, sheet),
                        command.idempotency_key, self._sheet_id(location))

    def live_postings(self, charge_ids: Sequence[str] | None = None) -> list[LivePosting]:
        """Labour timesheet entries live in Intacct now: every entry billbridge
        wrote, in every entity, less the ones a reversal names."""
        location = "" if self.settings.entities else self.settings.location_id
        rows = self._entries(location, None)
        places = {str(r.get("TIMESHEETKEY")): str(r.get("MEGAENTITYID") or location)
                  for r in rows}
        wanted = None if charge_ids is None else set(charge_ids)
        return [p for p in mapping.live_labour(rows, places)
                if wanted is None or p.charge in wanted]

    # -- invoices: create_invoice, its number the canonical invoice id --------------------
    def _invoice(self, command: OutboundCommand) -> _Planned:
        customer = named(command, "customer")
        ref = command.ref("customer", customer)
        customer_id, location = split(ref) if ref else (customer, self.settings.location_id)
        body = mapping.invoice(command.payload, customer_id, self.settings, self.today())
        return _Planned(command, location, self._create_invoice(command, body),
                        str(body["invoiceno"]),
                        lambda r: external(r.key, location) if r.key else None)

    def _create_invoice(self, command: OutboundCommand, body: dict[str, Any]) -> Any:
        return Function(command.idempotency_key, element("create_invoice", body))


def by_marker(entries: Sequence[dict[str, Any]], location: str) -> dict[str, str]:
    """Timesheet entries by the command key in their marker: the ERP id of the
    first timesheet that carries each."""
    out: dict[str, str] = {}
    for row in entries:
        seen = MARKER.search(str(row.get("DESCRIPTION") or ""))
        if seen:
            out.setdefault(seen.group(1), external(str(row["TIMESHEETKEY"]), location))
    return out


def _in(field: str, values: list[str]) -> dict[str, Any]:
    return {"in": {"field": field, "value": values}}


def _any_like(field: str, patterns: list[str]) -> dict[str, Any]:
    likes = [{"field": field, "value": p} for p in patterns]
    return {"like": likes[0]} if len(likes) == 1 else {"or": {"like": likes}}

