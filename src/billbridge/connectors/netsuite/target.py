"""NetSuite as the ERP ``Target``: customers, projects (``job``), time bills
(``timeBill``) and invoices, exactly once.

A batch is split by record type. Records that support external ids are
upserted by them (``PUT …/eid:{externalId}``, or an asynchronous batch of
``PUT`` items each carrying its ``externalId``): a resend after a lost
acknowledgement, in whatever batch the dispatcher groups it, updates the
record it created instead of making a twin. A record type configured without
external ids (``marker_types``) is created with a marker field holding the
command's idempotency key; a resend (``attempt > 1``) first looks the markers
up with one SuiteQL query and creates only what is not there. Reversals are
``PATCH``es, idempotent by nature. Small groups go one record per call,
larger ones as asynchronous batches of up to 100.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from billbridge.connectors.base import (
    ERP_REFERENCES,
    IdempotencyMode,
    LivePosting,
    OutboundCommand,
    PermanentError,
    RateLimit,
    RecordResult,
    ResultStatus,
    TransientError,
)
from billbridge.connectors.netsuite.client import (
    BATCH_LIMIT,
    SUITEQL_PAGE,
    NetSuiteClient,
    Outcome,
    batch_key,
    sql_literal,
)
from billbridge.connectors.netsuite.mapping import (
    BODIES,
    MARKER_FIELDS,
    RECORD_TYPES,
    MappingConfig,
    Refusal,
    bare_marker,
    marker,
    memo_record,
    record_key,
    reversal_body,
)
from billbridge.domain.money import round_money

ORDER = ("customer", "job", "timeBill", "invoice")  # records a later one may refer to first
CREATED_ONCE = frozenset({"time_charge.post", "invoice.create"})  # may use markers
TIME_BILLS = ("SELECT id, customer, hours, rate, approvalstatus, memo FROM timebill "
              "WHERE memo LIKE 'billbridge %' ORDER BY id")  # every memo billbridge writes


@dataclass
class _Write:
    command: OutboundCommand
    key: str  # external id, or marker in marker mode
    body: dict[str, Any]
    members: list[OutboundCommand] = field(default_factory=list)  # commands sharing the key


class NetSuiteTarget:
    references = ERP_REFERENCES  # the payload fields it resolves through refs

    def __init__(self, client: NetSuiteClient, *, name: str = "netsuite",
                 config: MappingConfig | None = None, marker_types: Iterable[str] = (),
                 max_batch: int = BATCH_LIMIT, async_threshold: int = 3,
                 concurrency: int = 1, read_page: int = SUITEQL_PAGE) -> None:
        self.name = name
        self.concurrency = max(1, concurrency)  # dispatch lanes: jobs in flight at once
        self.client = client
        self.config = config or MappingConfig()
        self.marker_types = frozenset(marker_types)
        unknown = self.marker_types - set(MARKER_FIELDS)
        if unknown:
            raise ValueError(f"netsuite marker_types {sorted(unknown)}: markers are supported "
                             f"for {sorted(MARKER_FIELDS)} only")
        self.max_batch = min(max_batch, BATCH_LIMIT)
        self.async_threshold = max(2, async_threshold)
        self.read_page = max(1, min(read_page, SUITEQL_PAGE))  # SuiteQL rows a page, reading
        self.rate_limit: RateLimit = client.rate_limit
        self.idempotency = IdempotencyMode.MARKER_LOOKUP if self.marker_types \
            else IdempotencyMode.NATIVE

    # -- the dispatcher's entry point --------------------------------------------------------
    def send(self, batch: Sequence[OutboundCommand]) -> list[RecordResult]:
        results: dict[str, RecordResult] = {}
        groups: dict[tuple[str, bool], dict[str, _Write]] = {}
        reversals: list[OutboundCommand] = []
        for command in batch:
            record_type = RECORD_TYPES.get(command.kind)
            if record_type is None:
                results[command.idempotency_key] = _rejected(
                    command, "INVALID_COMMAND", f"netsuite cannot {command.kind}")
            elif command.kind == "time_charge.reverse":
                reversals.append(command)
            else:
                try:
                    self._plan(command, record_type, groups)
                except Refusal as refusal:
                    results[command.idempotency_key] = _rejected(command, refusal.code,
                                                                 str(refusal))
        failures: list[TransientError] = []
        for record_type in ORDER:
            for by_marker in (False, True):
                writes = list(groups.get((record_type, by_marker), {}).values())
                if writes:
                    self._guard(writes, failures, results,
                                functools.partial(self._write, record_type, by_marker))
        for command in reversals:
            results[command.idempotency_key] = self._reverse(command, failures)
        if failures and all(r.status is ResultStatus.RETRY for r in results.values()):
            raise failures[0]  # nothing got through: a failed call, for the circuit breaker
        return list(results.values())

    # -- what NetSuite holds live ---------------------------------------------------------
    def live_postings(self, charge_ids: Sequence[str] | None = None) -> list[LivePosting]:
        """Time bills live in NetSuite now: those whose memo billbridge wrote
        (it names the charge in either mode), a SuiteQL page at a time, less
        the rejected (a reversal rejects its bill; a deleted one is gone).
        The amount is the bill's hours at its rate; a time bill has no
        currency of its own: it is its customer's, through its job."""
        wanted = None if charge_ids is None else set(charge_ids)
        bills = []
        for page in self.client.query_pages(TIME_BILLS, limit=self.read_page):
            for row in page:
                charge = memo_record(row.get("memo"))
                if charge is not None and (wanted is None or charge in wanted) and \
                        str(row.get("approvalstatus")) != self.config.rejected_approval_status:
                    bills.append((charge, row))
        owners = self._owners({str(row.get("customer")) for _charge, row in bills})
        out = []
        for charge, row in bills:
            project, currency = owners[str(row.get("customer"))]
            hours, rate = Decimal(str(row.get("hours") or 0)), Decimal(str(row.get("rate") or 0))
            out.append(LivePosting(charge, str(row.get("id")), hours,
                                   round_money(hours * rate, currency), currency, project))
        return out

    def _owners(self, booked_to: set[str]) -> dict[str, tuple[str | None, str]]:
        """What time bills are booked to (a job, or a customer directly) →
        (project code, ISO currency of the customer)."""
        jobs = {str(r.get("id")): r for r in self._rows("job", "id, entityid, parent", booked_to)}
        customers = (booked_to - set(jobs)) | {str(j.get("parent")) for j in jobs.values()}
        currency_of = {str(r.get("id")): str(r.get("currency"))
                       for r in self._rows("customer", "id, currency", customers)}
        codes = {internal: code for code, internal in self.config.currencies.items()}
        out: dict[str, tuple[str | None, str]] = {}
        for owner in booked_to:
            job = jobs.get(owner)
            customer = str(job.get("parent")) if job else owner
            currency = codes.get(currency_of.get(customer, ""))
            if currency is None:
                raise PermanentError(
                    f"{self.name} live time bills: customer {customer} has currency "
                    f"{currency_of.get(customer)!r}, which the connection's currencies option "
                    "does not name: add it", code="UNMAPPED_CURRENCY")
            out[owner] = (str(job["entityid"]) if job and job.get("entityid") else None,
                          currency)
        return out

    def _rows(self, table: str, columns: str, ids: set[str]) -> list[dict[str, Any]]:
        chosen = sorted(ids)
        return [row for start in range(0, len(chosen), SUITEQL_PAGE)
                for row in self.client.query_all(
                    f"SELECT {columns} FROM {table} WHERE id IN "
                    f"({', '.join(sql_literal(i) for i in chosen[start:start + SUITEQL_PAGE])})")]

    # -- planning ------------------------------------------------------------------------
    def _plan(self, command: OutboundCommand, record_type: str,
              groups: dict[tuple[str, bool], dict[str, _Write]]) -> None:
        try:
            body = BODIES[command.kind](command, self.config)
        except Refusal:
            raise
        except (KeyError, TypeError, ValueError, ArithmeticError, AttributeError) as exc:
            raise Refusal("INVALID_COMMAND", f"{command.kind} (outbox {command.id}): "
                          f"payload does not fit a NetSuite {record_type}: "
                          f"{type(exc).__name__}: {exc}") from None
        by_marker = record_type in self.marker_types and command.kind in CREATED_ONCE
        if by_marker:
            key = marker(command.idempotency_key, str(command.payload.get("id")))
            body[MARKER_FIELDS[record_type]] = key
        else:
            key = record_key(command)
        group = groups.setdefault((record_type, by_marker), {})
        if key in group:  # one record written twice in a batch: the later values win
            group[key].body.update(body)
            group[key].members.append(command)
        else:
            group[key] = _Write(command, key, body, [command])

    # -- writing ---------------------------------------------------------------------------
    def _guard(self, writes: list[_Write], failures: list[TransientError],
               results: dict[str, RecordResult],
               run: Callable[[list[_Write]], list[Outcome]]) -> None:
        """Run one group; a transient failure of its calls makes its commands
        RETRY without losing what other groups achieved."""
        try:
            outcomes = run(writes)
        except TransientError as exc:
            failures.append(exc)
            outcomes = [Outcome(retry=True, code=exc.code, message=str(exc))] * len(writes)
        for write, outcome in zip(writes, outcomes, strict=True):
            for command in write.members:
                results[command.idempotency_key] = _result(command, outcome)

    def _write(self, record_type: str, by_marker: bool, writes: list[_Write]) -> list[Outcome]:
        outcomes: dict[str, Outcome] = {}
        if by_marker:
            resent = [w for w in writes if any(c.attempt > 1 for c in w.members)]
            if resent:  # an earlier attempt may have applied: look before creating again
                wanted = {w.key: w.key for w in resent} | {
                    bare_marker(w.command.idempotency_key): w.key for w in resent}
                found = self.client.find(record_type, MARKER_FIELDS[record_type], list(wanted))
                outcomes.update({wanted[m]: Outcome(internal_id=i) for m, i in found.items()})
        pending = [w for w in writes if w.key not in outcomes]
        for start in range(0, len(pending), self.max_batch):
            chunk = pending[start:start + self.max_batch]
            if len(chunk) < self.async_threshold:
                outcomes.update((w.key, self._one(record_type, by_marker, w)) for w in chunk)
            else:
                outcomes.update(self._batch(record_type, by_marker, chunk))
        return [outcomes[w.key] for w in writes]

    def _one(self, record_type: str, by_marker: bool, write: _Write) -> Outcome:
        try:
            if by_marker:
                return Outcome(internal_id=self.client.create(record_type, write.body))
            return Outcome(internal_id=self.client.upsert(record_type, write.key, write.body))
        except PermanentError as exc:
            if exc.code == "TARGET_AUTH":
                raise
            return Outcome(code=exc.code, message=str(exc))

    def _batch(self, record_type: str, by_marker: bool, chunk: list[_Write]
               ) -> dict[str, Outcome]:
        method = "POST" if by_marker else "PUT"
        column = MARKER_FIELDS[record_type] if by_marker else "externalid"
        items = [w.body if by_marker else {**w.body, "externalId": w.key} for w in chunk]
        keys = [w.key for w in chunk]
        try:
            outcomes = self.client.run_batch(
                method, record_type, items, column, keys,
                batch_key(method, record_type,
                          [c.idempotency_key for w in chunk for c in w.members]))
        except PermanentError as exc:
            if exc.code == "TARGET_AUTH":
                raise
            # NetSuite refused the batch as a whole and names no record: one by one.
            return {w.key: self._one(record_type, by_marker, w) for w in chunk}
        return dict(zip(keys, outcomes, strict=True))

    # -- reversals ----------------------------------------------------------------------------
    def _reverse(self, command: OutboundCommand,
                 failures: list[TransientError]) -> RecordResult:
        """The dispatcher sends a reversal only after the posting it undoes is
        acknowledged, and names that posting's time bill in ``refs``."""
        charge = command.payload.get("charge")
        internal = command.ref("time_charge", charge)
        if internal is None:
            return _rejected(command, "NOTHING_TO_REVERSE", f"time charge {charge} has no "
                             "NetSuite time bill to reverse (its posting never applied)")
        try:
            self.client.update("timeBill", internal, reversal_body(command, self.config))
        except TransientError as exc:
            failures.append(exc)
            return RecordResult(command.idempotency_key, ResultStatus.RETRY, code=exc.code,
                                message=str(exc), retry_after=exc.retry_after)
        except PermanentError as exc:
            if exc.code == "TARGET_AUTH":
                raise
            return _rejected(command, exc.code, str(exc))
        return RecordResult(command.idempotency_key, ResultStatus.APPLIED, external_id=internal)


def _rejected(command: OutboundCommand, code: str, message: str) -> RecordResult:
    return RecordResult(command.idempotency_key, ResultStatus.REJECTED, code=code,
                        message=message)


def _result(command: OutboundCommand, outcome: Outcome) -> RecordResult:
    if outcome.internal_id is not None:
        return RecordResult(command.idempotency_key, ResultStatus.APPLIED,
                            external_id=outcome.internal_id)
    status = ResultStatus.RETRY if outcome.retry else ResultStatus.REJECTED
    return RecordResult(command.idempotency_key, status, code=outcome.code,
                        message=outcome.message)

