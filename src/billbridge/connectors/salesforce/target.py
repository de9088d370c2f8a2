"""Write-back to Salesforce: upsert by external id, the idempotency mechanism
(a repeated command writes the same record again, never a twin).

Commands (kinds such as ``crm.opportunity.update`` or ``crm.account.upsert``)
carry ``{"object", "external_id_field", "external_id", "fields"}``; without
``object`` the kind names it (``crm.account.upsert`` → ``Account``). A group of
one goes to ``PATCH /sobjects/{object}/{field}/{value}`` (201 created, 200/204
updated, 300 several records match: rejected); larger groups go to sObject
Collections ``PATCH /composite/sobjects/{object}/{field}`` (200 records a
call, ``allOrNone`` false) whose per-record results become ``RecordResult``s.
An ``external_id_field`` of ``Id`` (a record id, e.g. the Opportunity the
hub was told about) is a plain ``PATCH /sobjects/{object}/{id}`` update, one
call per record: Collections accept external ids only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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

MAX_COLLECTION = 200
# Per-record codes worth another attempt: the row was busy, the org was busy.
RETRY_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "REQUEST_RUNNING_TOO_LONG", "SERVER_UNAVAILABLE"})


def _command_parts(command: OutboundCommand) -> tuple[str, str, str, dict[str, Any]] | str:
    payload = command.payload
    sobject, field = payload.get("object"), payload.get("external_id_field")
    kind = command.kind.split(".")
    if not sobject and len(kind) == 3 and kind[0] == "crm":  # crm.opportunity.update
        sobject = kind[1].capitalize()
    value, fields = payload.get("external_id"), payload.get("fields")
    if not sobject or not field or value in (None, "") or not isinstance(fields, Mapping):
        return (f"{command.kind}: payload needs object, external_id_field, external_id and "
                "fields")
    return str(sobject), str(field), str(value), dict(fields)


class SalesforceTarget:
    def __init__(self, client: SalesforceClient, *, name: str = "salesforce",
                 max_batch: int = MAX_COLLECTION, rate_limit: RateLimit | None = None) -> None:
        self.name = name
        self.client = client
        self.max_batch = min(max_batch, MAX_COLLECTION)
        self.rate_limit = rate_limit or RateLimit(25, 1, burst=25)
        self.idempotency = IdempotencyMode.NATIVE

    def send(self, batch: Sequence[OutboundCommand]) -> list[RecordResult]:
        results: list[RecordResult] = []
        groups: dict[tuple[str, str], list[tuple[OutboundCommand, str, dict[str, Any]]]] = {}
        for command in batch:
            parts = _command_parts(command)
            if isinstance(parts, str):
                results.append(RecordResult(command.idempotency_key, ResultStatus.REJECTED,
                                            code="INVALID_COMMAND", message=parts))
                continue
            sobject, field, value, fields = parts
            groups.setdefault((sobject, field), []).append((command, value, fields))
        for (sobject, field), items in groups.items():
            for chunk in self._chunks(items):
                if field == "Id":  # Collections take external ids only: update one by one
                    results.extend(self._update(sobject, *item) for item in chunk)
                elif len(chunk) == 1:
                    results.append(self._one(sobject, field, *chunk[0]))
                else:
                    results.extend(self._collection(sobject, field, chunk))
        return results

    @staticmethod
    def _chunks(items: list[tuple[OutboundCommand, str, dict[str, Any]]],
                ) -> list[list[tuple[OutboundCommand, str, dict[str, Any]]]]:
        """Chunks of at most 200 in which no external id repeats (Salesforce
        refuses a collection naming one external id twice)."""
        chunks: list[list[tuple[OutboundCommand, str, dict[str, Any]]]] = []
        for item in items:
            for chunk in chunks:
                if len(chunk) < MAX_COLLECTION and all(i[1] != item[1] for i in chunk):
                    chunk.append(item)
                    break
            else:
                chunks.append([item])
        return chunks

    def _update(self, sobject: str, command: OutboundCommand, record_id: str,
                fields: dict[str, Any]) -> RecordResult:
        key = command.idempotency_key
        try:
            self.client.update(sobject, record_id, fields)
        except PermanentError as exc:
            if exc.code == "TARGET_AUTH":
                raise
            return RecordResult(key, ResultStatus.REJECTED, code=exc.code, message=str(exc))
        return RecordResult(key, ResultStatus.APPLIED, external_id=record_id)

    def _one(self, sobject: str, field: str, command: OutboundCommand, value: str,
             fields: dict[str, Any]) -> RecordResult:
        key = command.idempotency_key
        try:
            status, body = self.client.upsert(sobject, field, value, fields)
        except PermanentError as exc:
            if exc.code == "TARGET_AUTH":
                raise
            return RecordResult(key, ResultStatus.REJECTED, code=exc.code, message=str(exc))
        if status == 300:
            return RecordResult(key, ResultStatus.REJECTED, code="MULTIPLE_MATCHES",
                                message=f"{sobject}.{field} = {value} matches several records: "
                                f"{body}")
        record_id = body.get("id") if isinstance(body, dict) else None
        return RecordResult(key, ResultStatus.APPLIED, external_id=record_id or value)

    def _collection(self, sobject: str, field: str,
                    chunk: list[tuple[OutboundCommand, str, dict[str, Any]]],
                    ) -> list[RecordResult]:
        records = [{**fields, field: value} for _command, value, fields in chunk]
        answers = self.client.upsert_collection(sobject, field, records)
        results = []
        for (command, value, _fields), answer in zip(chunk, answers, strict=True):
            key = command.idempotency_key
            if answer.get("success"):
                results.append(RecordResult(key, ResultStatus.APPLIED,
                                            external_id=answer.get("id") or value))
                continue
            errors = answer.get("errors") or [{}]
            code = str(errors[0].get("statusCode") or errors[0].get("errorCode") or "REJECTED")
            message = "; ".join(f"{e.get('statusCode') or e.get('errorCode')}: "
                                f"{e.get('message')}" for e in errors)
            status = ResultStatus.RETRY if code in RETRY_CODES else ResultStatus.REJECTED
            results.append(RecordResult(key, status, code=code, message=message))
        return results
