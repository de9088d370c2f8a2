"""HubSpot as a delivery ``Target``: CRM write-back through batch/update.

Command kinds: ``crm.deal.update`` and ``crm.company.update`` with payload
``{"id": ..., "properties": {...}}``, and the activation flow's
``crm.writeback`` (``{"record": <deal id>, "fields": {...}}``, a deal update).

HubSpot has no idempotency key for property updates, but an update is itself
idempotent: it sets absolute values, so a replay writes the same values again
and changes nothing. That is why ``idempotency`` is ``NATIVE`` (no marker
look-up is needed) although HubSpot never sees our key.
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
from billbridge.connectors.hubspot.client import BATCH_LIMIT, HubSpotClient

KINDS = {"crm.deal.update": "deals", "crm.company.update": "companies",
         "crm.writeback": "deals"}


def _input(command: OutboundCommand) -> tuple[str, dict[str, Any]] | str:
    """(record id, properties) of a command, or why it cannot be sent."""
    payload = command.payload
    if command.kind == "crm.writeback":
        record, props = payload.get("record"), payload.get("fields")
    else:
        record, props = payload.get("id"), payload.get("properties")
    if record in (None, "") or not isinstance(props, Mapping) or not props:
        return f"{command.kind} needs a record id and a non-empty properties object"
    # HubSpot property values are strings; None would be refused, so it is left out.
    values = {str(k): ("" if v is None else str(v).lower() if isinstance(v, bool) else str(v))
              for k, v in props.items() if v is not None}
    if not values:
        return f"{command.kind} for {record}: every property value is empty"
    return str(record), values


class HubSpotTarget:
    def __init__(self, client: HubSpotClient, *, name: str = "hubspot",
                 max_batch: int = BATCH_LIMIT) -> None:
        self.name = name
        self.client = client
        self.max_batch = min(max_batch, BATCH_LIMIT)
        self.rate_limit: RateLimit = client.rate_limit
        self.idempotency = IdempotencyMode.NATIVE

    def send(self, batch: Sequence[OutboundCommand]) -> list[RecordResult]:
        results: list[RecordResult] = []
        groups: dict[str, dict[str, dict[str, str]]] = {}
        members: dict[tuple[str, str], list[OutboundCommand]] = {}
        for command in batch:
            object_type = KINDS.get(command.kind)
            parsed = _input(command) if object_type else f"unknown command kind {command.kind!r}"
            if object_type is None or isinstance(parsed, str):
                results.append(RecordResult(command.idempotency_key, ResultStatus.REJECTED,
                                            code="VALIDATION", message=str(parsed)))
                continue
            record, props = parsed
            # HubSpot refuses a batch naming one id twice: merge, later values win.
            groups.setdefault(object_type, {}).setdefault(record, {}).update(props)
            members.setdefault((object_type, record), []).append(command)
        for object_type, updates in groups.items():
            results += self._update(object_type, updates, members)
        return results

    def _update(self, object_type: str, updates: dict[str, dict[str, str]],
                members: Mapping[tuple[str, str], list[OutboundCommand]]) -> list[RecordResult]:
        inputs = [{"id": record, "properties": props} for record, props in updates.items()]
        try:
            answer = self.client.batch_update(object_type, inputs)
        except PermanentError as exc:
            if exc.code == "TARGET_AUTH":
                raise
            if len(inputs) == 1:
                return self._all(members[(object_type, inputs[0]["id"])],  # type: ignore[index]
                                 ResultStatus.REJECTED, None, exc.code, str(exc))
            # A 400 names no record: send each alone to find the bad one(s).
            results: list[RecordResult] = []
            for record, props in updates.items():
                results += self._update(object_type, {record: props}, members)
            return results
        failed: dict[str, tuple[str, str]] = {}
        for error in answer.get("errors") or []:
            context = error.get("context") or {}
            for record in context.get("ids") or context.get("id") or []:
                failed[str(record)] = (str(error.get("category") or "REJECTED"),
                                       str(error.get("message") or "rejected by HubSpot"))
        results = []
        for record in updates:
            commands = members[(object_type, record)]
            if record in failed:
                code, message = failed[record]
                results += self._all(commands, ResultStatus.REJECTED, None, code, message)
            else:
                results += self._all(commands, ResultStatus.APPLIED, record, None, None)
        return results

    @staticmethod
    def _all(commands: Sequence[OutboundCommand], status: ResultStatus, external_id: str | None,
             code: str | None, message: str | None) -> list[RecordResult]:
        return [RecordResult(c.idempotency_key, status, external_id=external_id, code=code,
                             message=message) for c in commands]
