"""Write-back to Dynamics 365 Sales: ERP ids, project code and invoice status
onto the won opportunity and its account, many per ``$batch``.

Command kinds:

- ``crm.writeback`` (the activation and invoice flows): ``{"record":
  <opportunity id>, "fields": {...}}``. Each field lands in the column the
  connection's write-back map names (``mapping.DEFAULT_WRITEBACK``); account
  columns are written on the opportunity's account, found with one read per
  call for the opportunities not seen before.
- ``crm.opportunity.update|upsert|create`` and ``crm.account.…``: ``{"key":
  {column: value} | "id": <guid>, "fields": {...}}``, a record by alternate
  key or id.

Every write is a ``PATCH`` of the record's URL (by id or alternate key):
``If-Match: *`` for an update (a record that is gone answers 404 and is not
created again), ``If-None-Match: *`` for a create (a record that exists
answers 412: our earlier attempt applied, so the command is applied), neither
for an upsert. A command's requests form one change set (all or none), and
change sets travel together in one ``$batch`` (at most 1,000 requests) with
``odata.continue-on-error``, so one refused command does not sink the rest.
The writes set absolute values, which is why a resend after a lost
acknowledgement changes nothing and ``idempotency`` is ``NATIVE``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from billbridge.connectors.base import (
    IdempotencyMode,
    OutboundCommand,
    RateLimit,
    RecordResult,
    ResultStatus,
    parse_retry_after,
)
from billbridge.connectors.dynamics_sales.client import (
    BATCH_LIMIT,
    DataverseClient,
    key_segment,
)
from billbridge.connectors.dynamics_sales.mapping import (
    DEFAULT_WRITEBACK,
    GUID,
    writeback_columns,
    writeback_value,
)
from billbridge.connectors.odata import ChangeSetResult, Operation

ENTITY_SETS = {"opportunity": "opportunities", "account": "accounts"}
MODES = {"update": {"If-Match": "*"}, "create": {"If-None-Match": "*"}, "upsert": {}}
_GONE = "crm.writeback: no opportunity"
_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class _Plan:
    command: OutboundCommand
    operations: list[Operation]
    record: str
    mode: str


class DynamicsTarget:
    references: Mapping[str, tuple[str, ...]] = {"crm.writeback": ()}

    def __init__(self, client: DataverseClient, *, name: str = "dynamics-sales",
                 writeback: Mapping[str, tuple[str, str]] | None = None,
                 max_batch: int = BATCH_LIMIT // 2, concurrency: int = 1) -> None:
        self.name = name
        self.client = client
        self.writeback = dict(writeback or writeback_columns({}))
        # A write-back may take two requests (opportunity and account).
        self.max_batch = max(1, min(max_batch, BATCH_LIMIT // 2))
        self.rate_limit: RateLimit = client.rate_limit
        self.idempotency = IdempotencyMode.NATIVE
        self.concurrency = concurrency
        self._account_of: dict[str, str | None] = {}

    def send(self, batch: Sequence[OutboundCommand]) -> list[RecordResult]:
        results: list[RecordResult] = []
        plans: list[_Plan] = []
        self._learn_accounts([c for c in batch if c.kind == "crm.writeback"])
        for command in batch:
            plan = self._plan(command)
            if isinstance(plan, str):
                code = "RECORD_NOT_FOUND" if plan.startswith(_GONE) else "INVALID_COMMAND"
                results.append(RecordResult(command.idempotency_key, ResultStatus.REJECTED,
                                            code=code, message=plan))
            else:
                plans.append(plan)
        chunk: list[_Plan] = []
        for plan in plans:
            if sum(len(p.operations) for p in chunk) + len(plan.operations) > BATCH_LIMIT:
                results += self._send(chunk)
                chunk = []
            chunk.append(plan)
        if chunk:
            results += self._send(chunk)
        return results

    def _send(self, plans: list[_Plan]) -> list[RecordResult]:
        answers = self.client.batch([p.operations for p in plans])
        return [self._result(plan, answer) for plan, answer in zip(plans, answers, strict=True)]

    # -- planning ------------------------------------------------------------------
    def _learn_accounts(self, commands: Sequence[OutboundCommand]) -> None:
        """The account of each opportunity whose write-back has account columns."""
        if not any(table == "account" for table, _c in self.writeback.values()):
            return
        wanted = sorted({str(c.payload.get("record")).lower() for c in commands
                         if GUID.match(str(c.payload.get("record") or ""))
                         and any(self.writeback.get(f, ("", ""))[0] == "account"
                                 for f in dict(c.payload.get("fields") or {}))}
                        - set(self._account_of))
        if not wanted:
            return
        for row in self.client.rows_by_id("opportunities", "opportunityid", wanted,
                                          ["_parentaccountid_value"]):
            account = row.get("_parentaccountid_value")
            self._account_of[str(row["opportunityid"]).lower()] = \
                str(account).lower() if account else None

    def _plan(self, command: OutboundCommand) -> _Plan | str:
        payload = command.payload
        fields = payload.get("fields")
        if not isinstance(fields, Mapping) or not fields:
            return f"{command.kind}: payload needs a non-empty fields object"
        if command.kind == "crm.writeback":
            return self._writeback(command, str(payload.get("record") or ""), fields)
        parts = command.kind.split(".")
        if len(parts) != 3 or parts[0] != "crm" or parts[1] not in ENTITY_SETS \
                or parts[2] not in MODES:
            return (f"unknown command kind {command.kind!r}: use crm.writeback or "
                    "crm.<opportunity|account>.<update|upsert|create>")
        key = payload.get("key") or payload.get("id")
        if not key or not (isinstance(key, Mapping) or GUID.match(str(key))):
            return f"{command.kind}: payload needs key (alternate key columns) or id (a GUID)"
        record = str(key).lower() if isinstance(key, str) else dict(key)
        url = key_segment(ENTITY_SETS[parts[1]], record)
        body = {str(k): writeback_value(v) for k, v in fields.items()}
        return _Plan(command, [Operation("PATCH", url, body, MODES[parts[2]])], url, parts[2])

    def _writeback(self, command: OutboundCommand, record: str,
                   fields: Mapping[str, Any]) -> _Plan | str:
        if not GUID.match(record):
            return (f"crm.writeback: record {record!r} is not a Dynamics opportunity id "
                    "(a GUID)")
        record = record.lower()
        columns: dict[str, dict[str, Any]] = {"opportunity": {}, "account": {}}
        for name, value in fields.items():
            if value is None or name not in self.writeback:
                continue  # not written: no value, or no column for it in this firm's map
            table, column = self.writeback[name]
            columns[table][column] = writeback_value(value)
        operations = []
        if columns["opportunity"]:
            operations.append(Operation("PATCH", key_segment("opportunities", record),
                                        columns["opportunity"], MODES["update"]))
        if columns["account"]:
            if record not in self._account_of:
                return (f"{_GONE} {record} in Dynamics (deleted?); a write-back does "
                        "not create it again: restore it or dismiss the write-back")
            account = self._account_of[record]
            if account is None:
                return (f"crm.writeback: opportunity {record} has no parent account in "
                        f"Dynamics to write {', '.join(columns['account'])} on")
            operations.append(Operation("PATCH", key_segment("accounts", account),
                                        columns["account"], MODES["update"]))
        if not operations:
            known = ", ".join(sorted(self.writeback)) or "none"
            return (f"crm.writeback for {record}: none of {', '.join(fields)} has a column "
                    f"(write-back fields with columns: {known})")
        return _Plan(command, operations, record, "update")

    # -- results -------------------------------------------------------------------
    def _result(self, plan: _Plan, answer: ChangeSetResult) -> RecordResult:
        key = plan.command.idempotency_key
        if answer.answers is not None:
            return RecordResult(key, ResultStatus.APPLIED, external_id=plan.record)
        failure = answer.failure
        if failure is None:
            return RecordResult(key, ResultStatus.RETRY, code="NOT_REACHED",
                                message="Dynamics stopped the $batch before this change set")
        code, message = failure.error()
        if failure.status == 412 and plan.mode == "create":
            return RecordResult(key, ResultStatus.APPLIED, external_id=plan.record)
        if failure.status in _RETRY_STATUSES:
            return RecordResult(key, ResultStatus.RETRY, code=f"HTTP_{failure.status}",
                                message=message, retry_after=parse_retry_after(
                                    failure.headers.get("retry-after")))
        if failure.status == 404 and plan.mode == "update":
            return RecordResult(key, ResultStatus.REJECTED, code="RECORD_NOT_FOUND",
                                message=f"{message}: the record is gone from Dynamics and is "
                                "not created again; restore it or dismiss the write-back")
        return RecordResult(key, ResultStatus.REJECTED, code=code or f"HTTP_{failure.status}",
                            message=f"Dynamics refused the write-back: {message}")


__all__ = ["DEFAULT_WRITEBACK", "DynamicsTarget"]
