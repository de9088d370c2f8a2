"""Write-back to Salesforce by record id or external id: absolute field values,
so a repeated command writes the same record again, never a twin.

Command kinds:

- ``crm.writeback`` (the activation and invoice flows): ``{"record":
  <Opportunity id>, "fields": {...}}``. Each field lands in the Opportunity
  field the connection's write-back map names (``mapping.DEFAULT_WRITEBACK``;
  a field with no name there is not written); the record is matched on the
  connection's ``writeback_key`` (``Id`` unless it names an external id field).
- ``crm.opportunity.update``, ``crm.account.upsert``, …: ``{"object",
  "external_id_field", "external_id", "fields"}``; without ``object`` the
  kind names it (``crm.account.upsert`` → ``Account``).

By ``Id``: sObject Collections update ``PATCH /composite/sobjects`` (200
records a call, ``allOrNone`` false), which never creates a record: one that
is gone answers per record and the write-back is refused as
``RECORD_NOT_FOUND``. By external id: one record goes to ``PATCH
/sobjects/{object}/{field}/{value}`` (201 created, 200/204 updated, 300
several records match: refused), several to Collections upsert ``PATCH
/composite/sobjects/{object}/{field}``. No record appears twice in one call,
so a later command for it lands after the earlier one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from billbridge.connectors.base import (
    IdempotencyMode,
    OutboundCommand,
    PermanentError,
    RateLimit,
    RecordResult,
    ResultStatus,
)
from billbridge.connectors.salesforce.client import SalesforceClient
from billbridge.connectors.salesforce.mapping import DEFAULT_WRITEBACK

MAX_COLLECTION = 200
WRITEBACK = "crm.writeback"
# Per-record codes worth another attempt: the row was busy, the org was busy.
RETRY_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "REQUEST_RUNNING_TOO_LONG", "SERVER_UNAVAILABLE"})
# Per-record codes of a record that is not there (deleted, or never was).
GONE_CODES = frozenset({"ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY", "NOT_FOUND",
                        "MALFORMED_ID"})


@dataclass(frozen=True, slots=True)
class _Write:
    command: OutboundCommand
    sobject: str
    field: str  # ``Id`` or an external id field
    value: str
    fields: dict[str, Any]


def _value(value: Any) -> Any:
    """A JSON value as Salesforce fields take it; amounts stay text (never float)."""
    return value if isinstance(value, bool | int | str) else str(value)


class SalesforceTarget:
    references: Mapping[str, tuple[str, ...]] = {}  # nothing in a payload is a canonical id

    def __init__(self, client: SalesforceClient, *, name: str = "salesforce",
                 max_batch: int = MAX_COLLECTION, rate_limit: RateLimit | None = None,
                 writeback: Mapping[str, str] | None = None,
                 writeback_key: str = "Id") -> None:
        self.name = name
        self.client = client
        self.max_batch = min(max_batch, MAX_COLLECTION)
        self.rate_limit = rate_limit or RateLimit(25, 1, burst=25)
        self.idempotency = IdempotencyMode.NATIVE
        self.writeback = dict(DEFAULT_WRITEBACK if writeback is None else writeback)
        self.writeback_key = writeback_key

    def send(self, batch: Sequence[OutboundCommand]) -> list[RecordResult]:
        results: list[RecordResult] = []
        groups: dict[tuple[str, str], list[_Write]] = {}
        for command in batch:
            write = self._write(command)
            if isinstance(write, str):
                results.append(RecordResult(command.idempotency_key, ResultStatus.REJECTED,
                                            code="INVALID_COMMAND", message=write))
                continue
            groups.setdefault((write.sobject, write.field), []).append(write)
        for (_sobject, field), writes in groups.items():
            for chunk in self._chunks(writes):
                if field == "Id":
                    results.extend(self._update(chunk))
                elif len(chunk) == 1:
                    results.append(self._one(chunk[0]))
                else:
                    results.extend(self._collection(chunk))
        return results

    # -- planning ------------------------------------------------------------------
    def _write(self, command: OutboundCommand) -> _Write | str:
        """What ``command`` writes, or why it cannot be sent."""
        payload = command.payload
        if command.kind == WRITEBACK:
            return self._writeback(command, str(payload.get("record") or ""),
                                   payload.get("fields"))
        sobject, field = payload.get("object"), payload.get("external_id_field")
        kind = command.kind.split(".")
        if not sobject and len(kind) == 3 and kind[0] == "crm":  # crm.opportunity.update
            sobject = kind[1].capitalize()
        value, fields = payload.get("external_id"), payload.get("fields")
        if not sobject or not field or value in (None, "") or not isinstance(fields, Mapping):
            return (f"{command.kind}: payload needs object, external_id_field, external_id "
                    "and fields")
        return _Write(command, str(sobject), str(field), str(value), dict(fields))

    def _writeback(self, command: OutboundCommand, record: str, fields: Any) -> _Write | str:
        if not record or not isinstance(fields, Mapping):
            return f"{WRITEBACK}: payload needs record (the Opportunity) and a fields object"
        values = {self.writeback[name]: _value(value) for name, value in fields.items()
                  if value is not None and name in self.writeback}
        if not values:
            known = ", ".join(sorted(self.writeback)) or "none"
            return (f"{WRITEBACK} for Opportunity {record}: none of {', '.join(fields)} has a "
                    f"field in the connection's writeback map (fields mapped: {known})")
        return _Write(command, "Opportunity", self.writeback_key, record, values)

    @staticmethod
    def _chunks(writes: list[_Write]) -> list[list[_Write]]:
        """Chunks of at most 200 in which no record repeats (Salesforce refuses a
        collection naming one external id twice, and a record's later write
        must land after its earlier one)."""
        chunks: list[list[_Write]] = []
        last: dict[str, int] = {}  # record → index of the chunk holding its latest write
        for write in writes:
            start = last.get(write.value, -1) + 1
            for index in range(start, len(chunks)):
                if len(chunks[index]) < MAX_COLLECTION:
                    chunks[index].append(write)
                    break
            else:
                index = len(chunks)
                chunks.append([write])
            last[write.value] = index
        return chunks

    # -- calls -----------------------------------------------------------------------
    def _update(self, chunk: list[_Write]) -> list[RecordResult]:
        answers = self.client.update_collection([(w.sobject, w.value, w.fields)
                                                 for w in chunk])
        return [self._answer(w, a, external_id=w.value)
                for w, a in zip(chunk, answers, strict=True)]

    def _one(self, write: _Write) -> RecordResult:
        key = write.command.idempotency_key
        try:
            status, body = self.client.upsert(write.sobject, write.field, write.value,
                                              write.fields)
        except PermanentError as exc:
            if exc.code == "TARGET_AUTH":
                raise
            return RecordResult(key, ResultStatus.REJECTED, code=exc.code, message=str(exc))
        if status == 300:
            return RecordResult(key, ResultStatus.REJECTED, code="MULTIPLE_MATCHES",
                                message=f"{write.sobject}.{write.field} = {write.value} matches "
                                f"several records: {body}")
        record_id = body.get("id") if isinstance(body, dict) else None
        return RecordResult(key, ResultStatus.APPLIED, external_id=record_id or write.value)

    def _collection(self, chunk: list[_Write]) -> list[RecordResult]:
        sobject, field = chunk[0].sobject, chunk[0].field
        records = [{**w.fields, field: w.value} for w in chunk]
        answers = self.client.upsert_collection(sobject, field, records)
        return [self._answer(w, a, external_id=w.value)
                for w, a in zip(chunk, answers, strict=True)]

    @staticmethod
    def _answer(write: _Write, answer: Mapping[str, Any], *, external_id: str) -> RecordResult:
        """A Collections result (``{id, success, errors}``) as a record result."""
        key = write.command.idempotency_key
        if answer.get("success"):
            return RecordResult(key, ResultStatus.APPLIED,
                                external_id=str(answer.get("id") or external_id))
        errors = answer.get("errors") or [{}]
        code = str(errors[0].get("statusCode") or errors[0].get("errorCode") or "REJECTED")
        message = "; ".join(f"{e.get('statusCode') or e.get('errorCode')}: {e.get('message')}"
                            for e in errors)
        if code in RETRY_CODES:
            return RecordResult(key, ResultStatus.RETRY, code=code, message=message)
        if write.field == "Id" and code in GONE_CODES:
            return RecordResult(key, ResultStatus.REJECTED, code="RECORD_NOT_FOUND",
                                message=f"no {write.sobject} {write.value} in Salesforce "
                                f"({message}); a write-back does not create it again: "
                                "restore it or dismiss the write-back")
        return RecordResult(key, ResultStatus.REJECTED, code=code, message=message)
