"""Oracle Fusion Cloud ERP as the ERP ``Target``: customers, projects, labour
costs, reversals and invoices.

Parties and projects are few: one POST each (``Upsert-Mode: true`` where the
settings say so), in parallel up to the client's concurrency, or a PATCH
when the hub already knows the record's Fusion id. Costs and invoices are
many: one batch call per kind ([BATCH]: all or none, so when a part fails
the others are answered RETRY and sent again), or one POST each in parallel
when ``use_batch`` is off. Fusion is not trusted to recognise a repeat (the
sources leave duplicate references and Upsert-Mode's matching unverified): a
command sent again (``attempt > 1``) is first looked up by its reference
(the party number, project number, cost reference or transaction number)
and only written when it is not found.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from typing import Any

from billbridge.connectors.base import (
    DeliveryError,
    LivePosting,
    OutboundCommand,
    PermanentError,
    RecordResult,
    ResultStatus,
)
from billbridge.connectors.erp import ErpTarget
from billbridge.connectors.fields import (
    Built,
    build_each,
    posting_to_reverse,
    required_ref,
)
from billbridge.connectors.kinds import send_by_kind
from billbridge.connectors.oracle_fusion import mapping
from billbridge.connectors.oracle_fusion.client import CRM, FSCM, VERSION, OracleClient, Part
from billbridge.connectors.oracle_fusion.mapping import REFERENCE, OracleSettings, any_of, quoted
from billbridge.connectors.paging import chunks

LOOKUP_CHUNK = 50  # references per look-up: a q of some 3 kB, well inside a URL's limits
REFERENCES = {"customer.upsert": ("id",), "project.upsert": ("code",),
              "time_charge.reverse": ("charge",), "invoice.create": ("customer",)}
ORGANIZATIONS = f"{CRM}/hubOrganizations"
PROJECTS = f"{FSCM}/projects"
UNPROCESSED = f"{FSCM}/unprocessedProjectCosts"
PROCESSED = f"{FSCM}/projectCosts"
INVOICES = f"{FSCM}/receivablesInvoices"
ORDER = ("customer.upsert", "project.upsert", "time_charge.post", "time_charge.reverse",
         "invoice.create")

Mapped = Built


@dataclass(frozen=True, slots=True)
class Upserted:
    """A kind written one record a call: the hub's record kind and the
    payload field naming it, the collection, the number Fusion keeps for it
    (the look-up key) and the id its URL takes."""

    record: str
    field: str
    path: str
    number: str
    id: str
    what: str


_result = RecordResult.of


def _failed(command: OutboundCommand, exc: DeliveryError) -> RecordResult:
    if exc.transient:
        return _result(command, ResultStatus.RETRY, code=exc.code, message=str(exc),
                       retry_after=exc.retry_after)
    return _result(command, ResultStatus.REJECTED, code=exc.code, message=str(exc))


def _field(answer: dict[str, Any], name: str, what: str) -> str:
    value = answer.get(name)
    if value in (None, ""):
        raise PermanentError(f"Fusion created the {what} but answered no {name}; find it in "
                             "Fusion and link it by hand", code="TARGET_PROTOCOL")
    return str(value)


class OracleTarget(ErpTarget[OracleClient, OracleSettings]):
    references = REFERENCES  # the payload fields it resolves through refs

    def __init__(self, client: OracleClient, settings: OracleSettings | None = None, *,
                 name: str = "oracle-fusion", max_batch: int = 100, concurrency: int = 1,
                 today: Callable[[], date] | None = None) -> None:
        super().__init__(client, settings or OracleSettings(), name=name, max_batch=max_batch,
                         today=today, concurrency=concurrency)
        self.found_by_reference = 0  # resends answered by a look-up instead of a write
        self._handlers: dict[str, Callable[[Sequence[OutboundCommand]], list[RecordResult]]] = {
            "customer.upsert": self._customers, "project.upsert": self._projects,
            "time_charge.post": self._costs, "time_charge.reverse": self._reversals,
            "invoice.create": self._invoices}

    def send(self, batch: Sequence[OutboundCommand]) -> list[RecordResult]:
        """Kind by kind, parties first (``connectors.kinds``)."""
        return send_by_kind(batch, self._handlers, writes=lambda: self.client.writes,
                            vendor="Oracle Fusion", order=ORDER)

    # -- the shared steps: map, look up resends, write the rest -----------------------
    def _resent(self, mapped: Mapped, reference: Callable[[dict[str, Any]], str],
                find: Callable[[list[str]], dict[str, str]],
                results: list[RecordResult]) -> Mapped:
        """Look up the references of resent commands; answer the ones found
        and return what still has to be written."""
        resent = {reference(r) for c, r in mapped if c.attempt > 1}
        found = find(sorted(resent)) if resent else {}
        rest: Mapped = []
        for command, record in mapped:
            known = found.get(reference(record)) if command.attempt > 1 else None
            if known is None:
                rest.append((command, record))
                continue
            with self._counting:  # a dispatcher's threads share the target
                self.found_by_reference += 1
            results.append(_result(command, ResultStatus.APPLIED, known))
        return rest

    def _lookup(self, path: str, field: str, answer: str, values: list[str], what: str,
                extra: str | None = None) -> dict[str, str]:
        found: dict[str, str] = {}
        for chunk in chunks(values, LOOKUP_CHUNK):
            q = f"({any_of(field, chunk)})" + (f" and {extra}" if extra else "")
            for row in self.client.items(path, what, q=q):
                if row.get(field) is not None and row.get(answer) is not None:
                    found.setdefault(str(row[field]), str(row[answer]))
        return found

    def _one_by_one(self, mapped: Mapped, write: Callable[[OutboundCommand, dict[str, Any]], str],
                    results: list[RecordResult]) -> None:
        """One call per record, ``client.concurrency`` at a time."""
        def run(item: tuple[OutboundCommand, dict[str, Any]]) -> RecordResult:
            command, record = item
            try:
                return _result(command, ResultStatus.APPLIED, write(command, record))
            except DeliveryError as exc:
                return _failed(command, exc)
        if len(mapped) <= 1:
            results += [run(item) for item in mapped]
            return
        with ThreadPoolExecutor(max_workers=min(self.client.concurrency, len(mapped))) as pool:
            results += list(pool.map(run, mapped))

    def _batched(self, collection: str, mapped: Mapped, answer_id: Callable[[dict[str, Any],
                 dict[str, Any]], str], results: list[RecordResult]) -> None:
        """Creates of one collection in one batch (all or none), or one POST
        each when the settings turn batches off."""
        if not mapped:
            return
        path = f"{FSCM}/{collection}"
        if not self.settings.use_batch:
            self._one_by_one(mapped, lambda _c, r: answer_id(
                r, self.client.create(path, f"create {collection}", r)), results)
            return
        parts = [Part(f"part{n}", f"/{VERSION}/{collection}", "create", record)
                 for n, (_c, record) in enumerate(mapped, start=1)]
        answer = self.client.batch("/fscmRestApi/resources", parts, f"batch of {collection}")
        for part, (command, record) in zip(parts, mapped, strict=True):
            if part.id in answer.failed:
                results.append(_result(command, ResultStatus.REJECTED, code="ORACLE_REJECTED",
                                       message=f"Fusion refused it: {answer.failed[part.id]}"))
            elif answer.failed:
                results.append(_result(command, ResultStatus.RETRY, code="BATCH_ROLLED_BACK",
                                       message="not written: another part of its batch was "
                                       "refused, and a batch is all or none"))
            else:
                try:
                    results.append(_result(command, ResultStatus.APPLIED,
                                           answer_id(record, answer.applied.get(part.id, {}))))
                except PermanentError as exc:
                    results.append(_failed(command, exc))

    # -- customers → hubOrganizations, projects → projects ------------------------------
    def _customers(self, commands: Sequence[OutboundCommand]) -> list[RecordResult]:
        return self._upserts(commands, Upserted("customer", "id", ORGANIZATIONS, "PartyNumber",
                                                "PartyNumber", "party"),
                             lambda c: mapping.organization(c.payload, self.settings))

    def _projects(self, commands: Sequence[OutboundCommand]) -> list[RecordResult]:
        return self._upserts(commands, Upserted("project", "code", PROJECTS, "ProjectNumber",
                                                "ProjectId", "project"),
                             lambda c: mapping.project(c.payload, self.settings))

    def _upserts(self, commands: Sequence[OutboundCommand], kind: Upserted,
                 build: Callable[[OutboundCommand], dict[str, Any]]) -> list[RecordResult]:
        """A record the hub knows the Fusion id of is updated (``PATCH``);
        any other is created (``POST``, ``Upsert-Mode`` as set), after a
        resend's look-up by its number."""
        results: list[RecordResult] = []
        mapped = build_each(commands, build, results)
        mapped = self._resent(mapped, lambda r: str(r[kind.number]),
                              lambda numbers: self._lookup(kind.path, kind.number, kind.id,
                                                           numbers, f"{kind.what} look-up"),
                              results)

        def write(command: OutboundCommand, record: dict[str, Any]) -> str:
            known = command.ref(kind.record, command.payload.get(kind.field))
            if known:
                self.client.update(f"{kind.path}/{known}", f"update {kind.what}",
                                   {k: v for k, v in record.items() if k != kind.number})
                return known
            answer = self.client.create(kind.path, f"create {kind.what}", record,
                                        upsert=self.settings.upsert_mode)
            return _field(answer, kind.id, kind.what)

        self._one_by_one(mapped, write, results)
        return results

    # -- time charges → unprocessedProjectCosts ---------------------------------------------
    def _costs_by_reference(self, references: list[str]) -> list[dict[str, Any]]:
        """Billbridge's costs with these references, imported or not: an
        imported cost leaves ``unprocessedProjectCosts`` for ``projectCosts``."""
        rows: list[dict[str, Any]] = []
        for path in (UNPROCESSED, PROCESSED):
            seen = {str(r.get(REFERENCE)) for r in rows}
            wanted = [r for r in references if r not in seen]
            for chunk in chunks(wanted, LOOKUP_CHUNK):
                q = f"({any_of(REFERENCE, chunk)}) and TransactionSource = " \
                    f"{quoted(self.settings.cost_source)}"
                rows += self.client.items(path, "cost look-up", q=q)
        return rows

    def _found_costs(self, references: list[str]) -> dict[str, str]:
        return {str(r[REFERENCE]): str(r[REFERENCE]) for r in self._costs_by_reference(references)
                if r.get(REFERENCE)}

    def _costs(self, commands: Sequence[OutboundCommand]) -> list[RecordResult]:
        results: list[RecordResult] = []
        mapped = build_each(commands, lambda c: mapping.cost(
            c.payload, c.idempotency_key, self.settings), results)
        mapped = self._resent(mapped, lambda r: str(r[REFERENCE]), self._found_costs, results)
        # A cost is known by its reference (the key): its UniqID is a server hash
        # that changes when the cost is imported [UPC, PC].
        self._batched("unprocessedProjectCosts", mapped, lambda r, _a: str(r[REFERENCE]),
                      results)
        return results

    def _reversals(self, commands: Sequence[OutboundCommand]) -> list[RecordResult]:
        results: list[RecordResult] = []
        wanted = sorted({c.ref("time_charge", c.payload.get("charge")) or "" for c in commands}
                        - {""})
        originals = {str(r[REFERENCE]): r for r in self._costs_by_reference(wanted)}

        mapped = build_each(commands, lambda c: mapping.reversal(
            posting_to_reverse(c, originals, what="cost", vendor="Fusion"),
            str(c.payload.get("charge")), c.idempotency_key), results)
        mapped = self._resent(mapped, lambda r: str(r[REFERENCE]), self._found_costs, results)
        self._batched("unprocessedProjectCosts", mapped, lambda r, _a: str(r[REFERENCE]),
                      results)
        return results

    def live_postings(self, charge_ids: Sequence[str] | None = None) -> list[LivePosting]:
        """Labour costs live in Fusion now: every cost of billbridge's
        transaction source, imported or not, less the ones a reversal names."""
        q = f"TransactionSource = {quoted(self.settings.cost_source)}"
        rows = [r for path in (UNPROCESSED, PROCESSED)
                for r in self.client.items(path, "live costs", q=q)]
        wanted = None if charge_ids is None else set(charge_ids)
        return [p for p in mapping.live_labour(rows) if wanted is None or p.charge in wanted]

    # -- invoices → receivablesInvoices --------------------------------------------------
    def _invoices(self, commands: Sequence[OutboundCommand]) -> list[RecordResult]:
        results: list[RecordResult] = []
        today = self.today()

        def build(command: OutboundCommand) -> dict[str, Any]:
            number = required_ref(command, "customer", record="Fusion party",
                                  code="CUSTOMER_NOT_IN_ORACLE")
            return mapping.invoice(command.payload, number, self.settings, today)

        mapped = build_each(commands, build, results)
        source = f"TransactionSource = {quoted(self.settings.invoice_source)}"
        mapped = self._resent(mapped, lambda r: str(r["TransactionNumber"]),
                              lambda numbers: self._lookup(
                                  INVOICES, "TransactionNumber", "CustomerTransactionId",
                                  numbers, "invoice look-up", source), results)
        self._batched("receivablesInvoices", mapped, lambda _r, answer: _field(
            answer, "CustomerTransactionId", "invoice"), results)
        return results
