"""What the PSA write-back targets share (Harvest's, Replicon's): the fields
as text a user reads on a project (its notes, its description), labelled
lines under a ``-- billbridge --`` marker rewritten in place, leaving the
user's own text above it alone (values are absolute, so writing the same
fields again changes nothing); and a batch written command by command, where
a command the vendor refuses is rejected alone."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from billbridge.connectors.base import (
    IdempotencyMode,
    Limited,
    OutboundCommand,
    PermanentError,
    RecordResult,
    ResultStatus,
)

KIND = "psa.writeback"
MARKER = "-- billbridge --"
LABELS = {"erp_project_id": "ERP project", "erp_customer_id": "ERP customer"}


def note_lines(fields: Mapping[str, Any]) -> dict[str, str]:
    """The fields as labelled note lines: ``ERP project: L-000002``,
    ``Invoice inv_GLX-001_2026-03-31: paid, total 2525.00``."""
    lines: dict[str, str] = {}
    if fields.get("invoice"):
        status = fields.get("invoice_status") or "unknown"
        total = fields.get("invoice_total")
        lines[f"Invoice {fields['invoice']}"] = f"{status}, total {total}" if total else status
    for key, value in fields.items():
        if key in ("project_code", "invoice", "invoice_status", "invoice_total") or value is None:
            continue
        lines[LABELS.get(key, key)] = str(value)
    return lines


def merge_notes(notes: str | None, lines: Mapping[str, str]) -> str:
    """The user's notes, then our block with ``lines`` set by label."""
    text = notes or ""
    own, _, ours = text.partition(MARKER)
    block: dict[str, str] = {}
    for line in ours.strip().splitlines():
        label, sep, value = line.partition(": ")
        if sep:
            block[label] = value
    block.update(lines)
    body = "\n".join(f"{label}: {value}" for label, value in block.items())
    own = own.rstrip()
    return f"{own}\n\n{MARKER}\n{body}" if own else f"{MARKER}\n{body}"


def apply_each(batch: Sequence[OutboundCommand],
               write: Callable[[OutboundCommand], str]) -> list[RecordResult]:
    """``write`` each command (it returns the vendor's id of the project). A
    permanent refusal rejects that command only; a bad credential or a
    transient fault fails the batch, whose resend finds what was written."""
    results = []
    for command in batch:
        try:
            external_id = write(command)
        except PermanentError as exc:
            if exc.code == "TARGET_AUTH":
                raise
            results.append(RecordResult.of(command, ResultStatus.REJECTED, code=exc.code,
                                           message=str(exc)))
            continue
        results.append(RecordResult.of(command, ResultStatus.APPLIED, external_id=external_id))
    return results


C = TypeVar("C", bound=Limited)


class WritebackTarget(Generic[C]):
    """A PSA's project as a write-back target: the project's code is the
    marker (looked up before anything is created), so no key of the vendor's."""

    def __init__(self, client: C, *, name: str, max_batch: int) -> None:
        self.name = name
        self.client = client
        self.max_batch = max_batch
        self.rate_limit = client.rate_limit
        self.idempotency = IdempotencyMode.MARKER_LOOKUP


def writeback_fields(command: OutboundCommand) -> tuple[str, Mapping[str, Any]]:
    """(project code, fields) of a ``psa.writeback`` command, or a
    ``PermanentError`` VALIDATION naming what it lacks."""
    code, fields = command.payload.get("record"), command.payload.get("fields")
    if command.kind != KIND or not isinstance(code, str) or not code \
            or not isinstance(fields, Mapping):
        raise PermanentError(f"{command.kind} needs a project code (record) and fields",
                             code="VALIDATION")
    return code, fields
