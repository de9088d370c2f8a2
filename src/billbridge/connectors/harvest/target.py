"""Harvest as the PSA write-back ``Target``: the official project in Harvest.

``psa.writeback`` commands name a project by its official code (``record``)
and carry fields: the ERP's ids when the ERP confirms the project, an
invoice's status when the ERP reports it. The Harvest project with that code
is found (or an uncoded project of the same name under the client is given
the code, or the project is created under its client), so consultants log
against the official project. The fields are shown where a Harvest user
reads about a project: in its notes, as lines under a ``-- billbridge --``
marker that is rewritten in place, leaving the user's own notes alone.

Harvest has no idempotency key, so the code is the marker of DESIGN.md: every
send looks the project up by code before it creates anything, and a resend
after a lost acknowledgement finds the project the first attempt made. Notes
are set to absolute values, so a repeat changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from billbridge.connectors.base import (
    OutboundCommand,
    PermanentError,
    RecordResult,
)
from billbridge.connectors.harvest.client import HarvestClient
from billbridge.connectors.writeback import (
    KIND,
    MARKER,
    WritebackTarget,
    apply_each,
    merge_notes,
    note_lines,
    writeback_fields,
)

__all__ = ["KIND", "MARKER", "HarvestTarget", "merge_notes", "note_lines"]
# Billbridge prices the work, so a project it creates asks Harvest for no
# rates or budget of its own.
NEW_PROJECT = {"is_billable": True, "bill_by": "none", "budget_by": "none"}


class HarvestTarget(WritebackTarget[HarvestClient]):
    def __init__(self, client: HarvestClient, *, name: str = "harvest",
                 max_batch: int = 25) -> None:
        super().__init__(client, name=name, max_batch=max_batch)

    def send(self, batch: Sequence[OutboundCommand]) -> list[RecordResult]:
        """One look-up of the account's projects per batch, then one write per
        command that changes something. A transient fault fails the batch:
        the commands already written are found again on the resend."""
        projects = list(self.client.all("projects"))
        return apply_each(batch, lambda command: str(self._writeback(command, projects)["id"]))

    def _writeback(self, command: OutboundCommand,
                   projects: list[dict[str, Any]]) -> dict[str, Any]:
        payload = command.payload
        code, fields = writeback_fields(command)
        project = next((p for p in projects if p.get("code") == code), None)
        if project is None:
            project = self._adopt_or_create(code, payload, projects)
        change: dict[str, Any] = {}
        if project.get("code") != code:
            change["code"] = code
        notes = merge_notes(project.get("notes"), note_lines(fields))
        if notes != (project.get("notes") or ""):
            change["notes"] = notes
        if change:
            project.update(self.client.update("projects", project["id"], change))
        return project

    def _adopt_or_create(self, code: str, payload: Mapping[str, Any],
                         projects: list[dict[str, Any]]) -> dict[str, Any]:
        """An uncoded project with the deal's name under the customer's client
        is the same project (Harvest keeps names unique per client); else a
        new one, under the client found or created by name."""
        name, customer = payload.get("project_name"), payload.get("customer_name")
        if not name or not customer:
            raise PermanentError(f"Harvest has no project with code {code}, and the write-back "
                                 "does not name the project and its client to create it: give "
                                 "the project its code in Harvest", code="PROJECT_NOT_FOUND")
        client = self._client(str(customer))
        same = next((p for p in projects if not p.get("code") and p.get("name") == name
                     and (p.get("client") or {}).get("id") == client["id"]), None)
        if same is not None:
            return same
        created = self.client.create("projects", {**NEW_PROJECT, "client_id": client["id"],
                                                  "name": name, "code": code})
        projects.append(created)
        return created

    def _client(self, name: str) -> dict[str, Any]:
        wanted = name.strip().casefold()
        for client in self.client.all("clients"):
            if str(client.get("name") or "").strip().casefold() == wanted:
                return client
        return self.client.create("clients", {"name": name.strip()})
