"""Dynamics 365 Finance as the ERP ``Target``: customers, projects, labour
postings, reversals and invoices, many per ``$batch``.

Every command becomes requests of the change set of its aggregate (an
invoice's header and lines always in one), and the change sets travel
together in one ``$batch`` (up to 5,000 operations) with
``odata.continue-on-error``; each command is then settled on its own change
set's answer. Customers, projects and invoices are ``PATCH`` upserts on
their natural key (the canonical id, the project code, the canonical invoice
id), which a resend repeats harmlessly. Hour journal lines have no key of
ours (Finance numbers them), so each line's text carries the command's
marker and a resend (``attempt > 1``) looks its markers up first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from billbridge.connectors.base import (
    LivePosting,
    OutboundCommand,
    RecordResult,
    ResultStatus,
)
from billbridge.connectors.dynamics_finance import mapping
from billbridge.connectors.dynamics_finance.client import (
    BATCH_LIMIT,
    Answer,
    ChangeSetResult,
    FinanceClient,
    Operation,
    key_segment,
    literal,
)
from billbridge.connectors.dynamics_finance.mapping import FinanceSettings
from billbridge.connectors.erp import ErpTarget, plan_of
from billbridge.connectors.fields import MARKER, MappingError, marker, named, posting_to_reverse
from billbridge.connectors.paging import chunks

LOOKUP_CHUNK = 20  # markers or keys per look-up, to keep the $filter (and URL) short
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
REFERENCES = {"project.upsert": ("customer",), "time_charge.reverse": ("charge",),
              "invoice.create": ("customer",)}


@dataclass
class _Planned:
    """One command's requests, and how its answer names the record."""

    command: OutboundCommand
    operations: list[Operation]
    external_id: Callable[[list[Answer]], str]


@dataclass
class _ChangeSet:
    planned: list[_Planned] = field(default_factory=list)

    @property
    def operations(self) -> list[Operation]:
        return [op for p in self.planned for op in p.operations]


_result = RecordResult.of



class FinanceTarget(ErpTarget[FinanceClient, FinanceSettings]):
    references = REFERENCES  # the payload fields it resolves through refs

    def __init__(self, client: FinanceClient, settings: FinanceSettings | None = None, *,
                 name: str = "dynamics-finance", max_batch: int = 1000,
                 today: Callable[[], date] | None = None, concurrency: int = 1) -> None:
        super().__init__(client, settings or FinanceSettings(), name=name,
                         max_batch=min(max_batch, BATCH_LIMIT), today=today,
                         concurrency=concurrency)
        self.found_by_marker = 0  # resends answered by a look-up instead of a write
        self._plans: dict[str, Callable[[OutboundCommand], _Planned]] = {
            "customer.upsert": self._customer, "project.upsert": self._project,
            "time_charge.post": self._posting, "invoice.create": self._invoice}

    def send(self, batch: Sequence[OutboundCommand]) -> list[RecordResult]:
        results: list[RecordResult] = []
        pending = self._found_again(batch, results)
        reversals = [c for c in pending if c.kind == "time_charge.reverse"]
        originals = self._originals(reversals) if reversals else {}
        changesets: dict[str, _ChangeSet] = {}
        for command in pending:
            try:
                planned = (self._reversal(command, originals)
                           if command.kind == "time_charge.reverse"
                           else self._plan(command))
            except (MappingError, ValueError) as exc:
                code = exc.code if isinstance(exc, MappingError) else "MAPPING"
                results.append(_result(command, ResultStatus.REJECTED, code=code,
                                       message=str(exc)))
                continue
            changesets.setdefault(command.aggregate_key, _ChangeSet()).planned.append(planned)
        for call in self._calls(list(changesets.values())):
            answers = self.client.batch([c.operations for c in call])
            for changeset, answer in zip(call, answers, strict=True):
                results += self._settle(changeset, answer)
        return results

    def _plan(self, command: OutboundCommand) -> _Planned:
        return plan_of(self._plans, command, vendor="Dynamics 365 Finance")

    def _calls(self, changesets: list[_ChangeSet]) -> Iterable[list[_ChangeSet]]:
        """Change sets grouped into calls of at most ``BATCH_LIMIT`` operations."""
        call: list[_ChangeSet] = []
        size = 0
        for changeset in changesets:
            count = len(changeset.operations)
            if call and size + count > BATCH_LIMIT:
                yield call
                call, size = [], 0
            call.append(changeset)
            size += count
        if call:
            yield call

    def _settle(self, changeset: _ChangeSet, answer: ChangeSetResult) -> list[RecordResult]:
        """Each command of a change set on the change set's answer."""
        if answer.answers is not None:
            out, at = [], 0
            for planned in changeset.planned:
                mine = answer.answers[at:at + len(planned.operations)]
                at += len(planned.operations)
                if len(mine) != len(planned.operations):
                    out.append(_result(planned.command, ResultStatus.RETRY, code="BAD_BATCH_ANSWER",
                                       message="Finance answered fewer requests than were sent"))
                    continue
                try:
                    out.append(_result(planned.command, ResultStatus.APPLIED,
                                       planned.external_id(mine)))
                except MappingError as exc:
                    out.append(_result(planned.command, ResultStatus.REJECTED, code=exc.code,
                                       message=f"{exc}; find it in Finance and link it by hand"))
            return out
        if answer.failure is None:
            return [_result(p.command, ResultStatus.RETRY, code="NOT_REACHED",
                            message="Finance stopped the $batch before this change set")
                    for p in changeset.planned]
        failure = answer.failure
        code, message = failure.error()
        if failure.status in _RETRY_STATUSES:
            return [_result(p.command, ResultStatus.RETRY, code=f"HTTP_{failure.status}",
                            message=message) for p in changeset.planned]
        culprit = self._culprit(changeset, answer.failed_at)
        out = []
        for planned in changeset.planned:
            if culprit is None or planned is culprit:
                out.append(_result(planned.command, ResultStatus.REJECTED, code=code,
                                   message=f"Finance refused it (HTTP {failure.status}): "
                                   f"{message}"))
            else:
                out.append(_result(planned.command, ResultStatus.RETRY, code="ROLLED_BACK",
                                   message=f"rolled back with its change set: {message}"))
        return out

    @staticmethod
    def _culprit(changeset: _ChangeSet, failed_at: int | None) -> _Planned | None:
        """The command whose request failed; None when Finance did not say
        (then every command of the change set is refused with its answer)."""
        if failed_at is None:
            return None if len(changeset.planned) > 1 else changeset.planned[0]
        at = 0
        for planned in changeset.planned:
            at += len(planned.operations)
            if failed_at < at:
                return planned
        return None

    # -- resends: find what an earlier attempt wrote ---------------------------------
    def _found_again(self, batch: Sequence[OutboundCommand],
                     results: list[RecordResult]) -> list[OutboundCommand]:
        """Look up the markers of resent journal lines; answer the ones found
        and return what still has to be written."""
        resent = [c for c in batch if c.attempt > 1
                  and c.kind in ("time_charge.post", "time_charge.reverse")]
        if not resent:
            return list(batch)
        found = self._lines_by_marker([c.idempotency_key for c in resent])
        for command in resent:
            if command.idempotency_key in found:
                with self._counting:
                    self.found_by_marker += 1
                results.append(_result(command, ResultStatus.APPLIED,
                                       found[command.idempotency_key]))
        return [c for c in batch if not (c in resent and c.idempotency_key in found)]

    def _lines_by_marker(self, keys: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for chunk in chunks(keys, LOOKUP_CHUNK):
            where = " or ".join(f"Text eq {literal('*' + marker(k) + '*')}"
                                for k in chunk)
            for row in self.client.rows(self.settings.hour_lines_entity, "hour line look-up",
                                        params={"$filter": where, "cross-company": "true"}):
                seen = MARKER.search(str(row.get("Text") or ""))
                if seen:
                    found.setdefault(seen.group(1), mapping.line_id(row))
        return found

    # -- customers, projects: upserts on the natural key --------------------------------
    def _customer(self, command: OutboundCommand) -> _Planned:
        key, body = mapping.customer(command.payload, self.settings)
        account = key[self.settings.customer_key]
        return _Planned(command, [Operation("PATCH", key_segment(
            self.settings.customers_entity, key), body)], lambda _a: account)

    def _project(self, command: OutboundCommand) -> _Planned:
        customer = command.payload.get("customer")
        account = (command.ref("customer", customer) or str(customer)) if customer else None
        key, body = mapping.project(command.payload, account, self.settings)
        code = key[self.settings.project_key]
        return _Planned(command, [Operation("PATCH", key_segment(
            self.settings.projects_entity, key), body)], lambda _a: code)

    # -- time charges: hour journal lines -----------------------------------------------
    def _posting(self, command: OutboundCommand) -> _Planned:
        line = mapping.hour_line(command.payload, command.idempotency_key, self.settings)
        return _Planned(command, [Operation("POST", self.settings.hour_lines_entity, line)],
                        self._created_line)

    @staticmethod
    def _created_line(answers: list[Answer]) -> str:
        body = answers[0].json()
        if not isinstance(body, dict) or body.get("LineNumber") is None:
            raise MappingError("Finance created the hour line but answered no LineNumber",
                               code="TARGET_PROTOCOL")
        return mapping.line_id(body)

    def _originals(self, reversals: Sequence[OutboundCommand]) -> dict[str, dict[str, Any]]:
        """The lines the reversals undo, by the id the hub keeps for them."""
        wanted = sorted({c.ref("time_charge", c.payload.get("charge")) or ""
                         for c in reversals} - {""})
        found: dict[str, dict[str, Any]] = {}
        for chunk in chunks(wanted, LOOKUP_CHUNK):
            terms = []
            for line in chunk:
                key = mapping.line_key(line)
                if key is not None:
                    terms.append("(" + " and ".join(f"{k} eq {literal(v)}"
                                                    for k, v in key.items()) + ")")
            if not terms:
                continue
            for row in self.client.rows(self.settings.hour_lines_entity, "lines to reverse",
                                        params={"$filter": " or ".join(terms),
                                                "cross-company": "true"}):
                found[mapping.line_id(row)] = row
        return found

    def _reversal(self, command: OutboundCommand,
                  originals: dict[str, dict[str, Any]]) -> _Planned:
        original = posting_to_reverse(command, originals, what="hour line", vendor="Finance")
        line = mapping.reversal_line(original, str(command.payload.get("charge")),
                                     command.idempotency_key, self.settings)
        return _Planned(command, [Operation("POST", self.settings.hour_lines_entity, line)],
                        self._created_line)

    def live_postings(self, charge_ids: Sequence[str] | None = None) -> list[LivePosting]:
        """Labour lines live in Finance now: every hour line billbridge wrote in
        its journal, in every company, less the ones a reversal line names."""
        where = (f"JournalBatchNumber eq {literal(self.settings.hour_journal)} and "
                 f"Text eq {literal('billbridge *')}")
        lines = self.client.rows(self.settings.hour_lines_entity, "live hour lines",
                                 params={"$filter": where, "cross-company": "true"})
        wanted = None if charge_ids is None else set(charge_ids)
        return [p for p in mapping.live_labour(lines) if wanted is None or p.charge in wanted]

    # -- invoices: a free-text invoice header and its lines in one change set ------------
    def _invoice(self, command: OutboundCommand) -> _Planned:
        customer = named(command, "customer")  # its account number, unless the hub holds one
        account = command.ref("customer", customer) or customer
        (header_key, header), lines = mapping.invoice(command.payload, account,
                                                      self.settings, self.today())
        operations = [Operation("PATCH", key_segment(self.settings.invoice_headers_entity,
                                                     header_key), header)]
        operations += [Operation("PATCH", key_segment(self.settings.invoice_lines_entity, key),
                                 body) for key, body in lines]
        external = f"{header_key['dataAreaId']}/{header_key[self.settings.invoice_key]}"
        return _Planned(command, operations, lambda _a: external)
