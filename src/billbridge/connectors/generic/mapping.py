"""Generic time source ↔ canonical events. The same entry version arriving by
webhook and by poll maps to the same event id, so the inbox keeps one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from billbridge.connectors.contracts import ContractWatch

SOURCE = "generic"

ENTRY_FIELDS = ("id", "worker", "project", "task", "work_date", "hours", "billable", "notes",
                "status")


def event_id(entry: Mapping[str, Any]) -> str:
    return f"{entry.get('id')}:v{entry.get('version')}"


def time_entry_event(entry: Mapping[str, Any], *, source: str = SOURCE) -> dict[str, Any]:
    """A ``time_entry.upserted`` event for one source entry.

    Missing or wrong fields are passed through as they are: the inbox's
    validation names them and keeps the raw entry in the exception queue.
    """
    data = {name: entry.get(name) for name in ENTRY_FIELDS if name in entry}
    data["source_version"] = entry.get("version")
    return {
        "type": "time_entry.upserted",
        "source": source,
        "id": event_id(entry),
        "at": entry.get("updated_at"),
        "data": data,
    }


def project_event(project: Mapping[str, Any], *, source: str = SOURCE) -> dict[str, Any]:
    return {
        "type": "project.updated",
        "source": source,
        "id": f"project:{project.get('code')}:{project.get('status')}:{project.get('updated_at')}",
        "at": project.get("updated_at"),
        "data": {k: project[k] for k in ("code", "name", "status", "tasks") if k in project},
    }


def webhook_events(body: Any, *, source: str = SOURCE,
                   contracts: ContractWatch | None = None) -> list[Any]:
    """Events in one webhook delivery (one notification, or ``{"events": [...]}``
    of several); anything unrecognisable is returned as is, to be stored raw
    and opened as a malformed payload. A delivery carries the time entry
    itself, so each is checked against the contract (``contracts``) as a
    polled one is."""
    notes = body["events"] if isinstance(body, dict) and isinstance(body.get("events"), list) \
        else [body]
    events: list[Any] = []
    for note in notes:
        if isinstance(note, dict) and isinstance(note.get("time_entry"), dict):
            if contracts is not None:
                contracts.read("time_entry", note["time_entry"])
            events.append(time_entry_event(note["time_entry"], source=source))
        else:
            events.append(note)
    return events
