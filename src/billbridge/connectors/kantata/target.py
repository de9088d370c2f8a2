"""Kantata as a delivery ``Target`` (the "psa" role): ERP ids, the project code
and invoice status written onto the Kantata project as custom field values.

Custom fields are where a Kantata administrator keeps data from other systems
on a project (Settings → Custom Fields, subject Project), where consultants
and project leads see it, and what Kantata's project search and filters read.
``POST /custom_field_values`` creates a value, or replaces the one the
project already has for that field, and takes up to 100 values a call: one
absolute write, so a replay after a lost acknowledgement writes the same
values again and changes nothing (``IdempotencyMode.NATIVE``; Kantata never
sees our key).

The project is found by the hub's cross-reference when it knows it (the
write-back of activation binds the project code to the workspace id), else
by the project code already on it: ``GET /workspaces?search=custom_field_value:'CODE'``,
then an exact comparison, since Kantata's search is by keyword.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from billbridge.connectors.base import (
    IdempotencyMode,
    OutboundCommand,
    PermanentError,
    RecordResult,
    ResultStatus,
)
from billbridge.connectors.kantata.client import BULK_MAX, KantataClient
from billbridge.connectors.kantata.events import PARAMS
from billbridge.connectors.kantata.mapping import MappingConfig, Workspace

KINDS = frozenset({"psa.writeback"})


class KantataTarget:
    def __init__(self, client: KantataClient, *, name: str = "kantata",
                 config: MappingConfig | None = None, max_batch: int = BULK_MAX) -> None:
        self.name = name
        self.client = client
        self.config = config or MappingConfig(source=name)
        self.max_batch = max_batch
        # POST /custom_field_values has Kantata's endpoint-specific limit.
        self.rate_limit = client.limited_rate_limit
        self.idempotency = IdempotencyMode.NATIVE
        self._found: dict[str, str] = {}  # project code → workspace id, once looked up

    def send(self, batch: Sequence[OutboundCommand]) -> list[RecordResult]:
        results: list[RecordResult] = []
        valued: list[tuple[OutboundCommand, list[dict[str, Any]]]] = []
        for command in batch:
            parsed = self._values(command)
            if isinstance(parsed, str):
                results.append(_result(command, ResultStatus.REJECTED, code="VALIDATION",
                                       message=parsed))
            else:
                valued.append((command, parsed))
        found, problems = self._workspaces([command for command, _values in valued])
        chunk: list[tuple[OutboundCommand, str, list[dict[str, Any]]]] = []
        for command, values in valued:
            code = str(command.payload["record"])
            if code not in found:
                results.append(_result(command, ResultStatus.REJECTED, code="NOT_FOUND",
                                       message=problems[code]))
                continue
            if sum(len(v) for _c, _w, v in chunk) + len(values) > BULK_MAX:
                results += self._write(chunk)
                chunk = []
            chunk.append((command, found[code],
                          [{**v, "subject_id": int(found[code])} for v in values]))
        return results + (self._write(chunk) if chunk else [])

    def _values(self, command: OutboundCommand) -> list[dict[str, Any]] | str:
        """The custom field values of a command, or why it cannot be sent."""
        if command.kind not in KINDS:
            return f"unknown command kind {command.kind!r} for Kantata"
        record, fields = command.payload.get("record"), command.payload.get("fields")
        if record in (None, "") or not isinstance(fields, Mapping) or not fields:
            return f"{command.kind} needs a project code (record) and fields"
        values = [{"subject_type": "Workspace", "custom_field_id": int(cf), "value": str(v)}
                  for name, v in fields.items()
                  if v is not None and (cf := self.config.field_id(str(name)))]
        if not values:
            return (f"{command.kind} for {record}: none of {', '.join(map(str, fields))} has a "
                    f"Kantata custom field; map them in the {self.name} connection's "
                    "`custom_fields` option")
        return values

    def _workspaces(self, commands: Sequence[OutboundCommand]
                    ) -> tuple[dict[str, str], dict[str, str]]:
        """(project code → workspace id, project code → why none was found)."""
        found: dict[str, str] = {}
        for command in commands:
            code = str(command.payload["record"])
            known = command.ref("activation", code) or command.ref("project", code) \
                or self._found.get(code)
            if known:
                found[code] = known
        problems: dict[str, str] = {}
        for code in sorted({str(c.payload["record"]) for c in commands} - set(found)):
            try:
                found[code] = self._found[code] = self._search(code)
            except LookupError as exc:
                problems[code] = str(exc)
        return found, problems

    def _search(self, code: str) -> str:
        field = self.config.field_id("project_code")
        if field is None:
            raise LookupError("the project code custom field is not configured "
                              "(`custom_fields` option, key `project_code`), so Kantata "
                              "projects cannot be found by code")
        matches: list[Workspace] = []
        for page in self.client.pages("workspaces", {**PARAMS["workspaces"],
                                                     "search": f"custom_field_value:'{code}'"}):
            matches += [w for w in (Workspace.of(r, page.objects, self.config)
                                    for r in page.records) if w.code == code]
        if len(matches) != 1:
            many = f" ({', '.join(w.id for w in matches)})" if matches else ""
            raise LookupError(f"{len(matches)} Kantata projects carry project code {code!r} "
                              f"in custom field {field}{many}; exactly one must: set it on "
                              "the Kantata project, then retry this exception")
        return matches[0].id

    def _write(self, chunk: Sequence[tuple[OutboundCommand, str, list[dict[str, Any]]]]
               ) -> list[RecordResult]:
        try:
            self.client.create_custom_field_values([v for _c, _w, vs in chunk for v in vs])
        except PermanentError as exc:
            if exc.code == "TARGET_AUTH" or len(chunk) > 1:
                raise  # the dispatcher splits a refused batch to find the bad record
            return [_result(chunk[0][0], ResultStatus.REJECTED, code=exc.code,
                            message=str(exc))]
        return [_result(command, ResultStatus.APPLIED, external_id=workspace)
                for command, workspace, _v in chunk]


def _result(command: OutboundCommand, status: ResultStatus, *, external_id: str | None = None,
            code: str | None = None, message: str | None = None) -> RecordResult:
    return RecordResult(command.idempotency_key, status, external_id=external_id, code=code,
                        message=message)
