"""Replicon as the PSA write-back ``Target``: the official project in Replicon.

``psa.writeback`` commands name a project by its official code (``record``)
and carry fields (the ERP's ids, an invoice's status). The batch's projects
are looked up by code in one ``BulkGetProjectDetails3``; the fields are
written into the project's description under billbridge's marker
(``connectors/writeback.py``) with ``CreateProjectOrApplyModifications``, which
also creates a project delivery had not set up (name and code).

Replicon documents ``unitOfWorkId`` as idempotent only for
``CreateAccessToken2``, so a create is never trusted to be deduplicated: the
code is the marker of DESIGN.md, looked up before anything is created, and a
resend after a lost acknowledgement finds the project the first attempt made.
The ``unitOfWorkId`` sent is still derived from the command's key, never random.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from billbridge.connectors.base import (
    OutboundCommand,
    PermanentError,
    RecordResult,
)
from billbridge.connectors.replicon.client import RepliconClient
from billbridge.connectors.writeback import (
    WritebackTarget,
    apply_each,
    merge_notes,
    note_lines,
    writeback_fields,
)


class RepliconTarget(WritebackTarget[RepliconClient]):
    def __init__(self, client: RepliconClient, *, name: str = "replicon",
                 max_batch: int = 25) -> None:
        super().__init__(client, name=name, max_batch=max_batch)

    def send(self, batch: Sequence[OutboundCommand]) -> list[RecordResult]:
        """One look-up of the batch's projects, then one write per command
        that changes something. A transient fault fails the batch: what was
        written is found again on the resend."""
        codes = sorted({str(c.payload.get("record")) for c in batch
                        if isinstance(c.payload.get("record"), str)})
        projects = self.client.projects_by_code(codes) if codes else {}
        return apply_each(batch, lambda command: self._writeback(command, projects))

    def _writeback(self, command: OutboundCommand,
                   projects: dict[str, dict[str, Any] | None]) -> str:
        payload = command.payload
        code, fields = writeback_fields(command)
        unit_of_work = f"billbridge-{command.idempotency_key}"
        project = projects.get(code)
        if project is None:
            name = payload.get("project_name")
            if not name:
                raise PermanentError(f"Replicon has no project with code {code}, and the "
                                     "write-back does not name the project to create it: give "
                                     "the project its code in Replicon", code="PROJECT_NOT_FOUND")
            text = merge_notes(None, note_lines(fields))
            created = self.client.apply_project(None, {
                "nameToApply": {"value": str(name)}, "codeToApply": {"value": code},
                "descriptionToApply": {"value": text}}, unit_of_work)
            projects[code] = {**created, "description": text}
            return str(created.get("uri"))
        text = merge_notes(project.get("description"), note_lines(fields))
        if text != (project.get("description") or ""):
            self.client.apply_project({"uri": project.get("uri")},
                                      {"descriptionToApply": {"value": text}}, unit_of_work)
            project["description"] = text
        return str(project.get("uri"))
