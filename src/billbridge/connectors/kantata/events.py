"""Kantata records, as read from its API, → canonical events, fetching what a
record needs to be mapped: its project (workspace, with the project-code
custom field), the project's stories (its tasks), the submission that
approved it. The poller and the webhook door share this, so one change read
either way maps to one event."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from billbridge.connectors.contracts import ContractWatch, name_drift
from billbridge.connectors.kantata.client import KantataClient, Page
from billbridge.connectors.kantata.contract import CONTRACT
from billbridge.connectors.kantata.mapping import (
    MappingConfig,
    Workspace,
    custom_values,
    deleted_event,
    expense_event,
    milestone_event,
    project_event,
    stamp_seconds,
    time_entry_event,
)

# What each resource is read with, by the poller and by id alike.
PARAMS: dict[str, dict[str, str]] = {
    "workspaces": {"include": "custom_field_values", "include_archived": "true"},
    "stories": {"include": "custom_field_values", "all_on_account": "true"},
    "time_entries": {"include": "active_submission", "from_archived_workspaces": "true"},
    "expenses": {"include": "recent_submission", "from_archived_workspaces": "true"},
    "timesheet_submissions": {},
    "expense_report_submissions": {"all_on_account": "true"},
}
# A submission resource → (the resource it holds, the key of its ids, the
# submission key its records point at).
SUBMISSIONS = {
    "timesheet_submissions": ("time_entries", "time_entry_ids", "active_submission_id"),
    "expense_report_submissions": ("expenses", "expense_ids", "recent_submission_id"),
}


def submission_of(resource: str) -> tuple[str, str, str]:
    """(its submission resource, the submission's ids key, the record's pointer)."""
    for submissions, (held, ids_key, pointer) in SUBMISSIONS.items():
        if held == resource:
            return submissions, ids_key, pointer
    raise ValueError(f"{resource} are not submitted for approval")


def _submission(record: Mapping[str, Any], page: Page, pointer: str,
                resource: str) -> dict[str, Any] | None:
    return page.lookup(resource, record.get(pointer)) if record.get(pointer) else None


class KantataEvents:
    """One poll's (or one delivery's) reading of Kantata; it remembers the
    projects it has looked up so a page of entries costs one more call."""

    def __init__(self, client: KantataClient, config: MappingConfig,
                 contracts: ContractWatch | None = None) -> None:
        self.client = client
        self.config = config
        self.contracts = contracts or ContractWatch(CONTRACT)
        self._workspaces: dict[str, Workspace | None] = {}
        self._stories: dict[str, list[dict[str, Any]]] = {}

    # -- lookups -------------------------------------------------------------------
    def remember(self, page: Page) -> list[Workspace]:
        self.contracts.read_all("workspace", page.records)
        found = [Workspace.of(record, page.objects, self.config) for record in page.records]
        self._workspaces.update((w.id, w) for w in found)
        return found

    def workspaces(self, ids: Iterable[Any]) -> dict[str, Workspace | None]:
        wanted = {str(i) for i in ids if i not in (None, "")}
        missing = wanted - set(self._workspaces)
        if missing:
            self.remember(self.client.by_ids("workspaces", sorted(missing),
                                             PARAMS["workspaces"]))
            for gone in missing - set(self._workspaces):
                self._workspaces[gone] = None  # deleted, or not visible to this token
        return {i: self._workspaces[i] for i in wanted}

    def stories_of(self, workspace_id: str) -> list[dict[str, Any]]:
        if workspace_id not in self._stories:
            self._stories[workspace_id] = [
                story for page in self.client.pages("stories", {"workspace_id": workspace_id})
                for story in page.records]
        return self._stories[workspace_id]

    # -- records → events ----------------------------------------------------------
    def for_page(self, page: Page, *, changed_at: Mapping[str, int] | None = None) -> list[Any]:
        """Events for one page of any resource the connector reads."""
        if page.key == "workspaces":
            return self.for_workspaces(self.remember(page))
        if page.key in ("stories", *SUBMISSIONS):
            self.contracts.read_all(RECORD_TYPES[page.key], page.records)
        if page.key == "stories":
            return self.for_stories(page)
        if page.key in SUBMISSIONS:
            return self.for_submissions(page)
        holder, _ids_key, pointer = submission_of(page.key)
        spaces = self.workspaces(r.get("workspace_id") for r in page.records)
        mapper = time_entry_event if page.key == "time_entries" else expense_event
        kind = RECORD_TYPES[page.key]
        return [name_drift(mapper(r, spaces.get(str(r.get("workspace_id"))),
                                  _submission(r, page, pointer, holder), self.config,
                                  changed_at=(changed_at or {}).get(str(r.get("id")))),
                           self.contracts.read(kind, r))
                for r in page.records]

    def for_workspaces(self, workspaces: Sequence[Workspace]) -> list[Any]:
        events = []
        for workspace in workspaces:
            if workspace.code is None:
                continue  # not linked to billing: not worth reading its stories
            at = stamp_seconds(workspace.raw.get("updated_at"))
            event = project_event(workspace, self.stories_of(workspace.id),
                                  event_id=f"workspace:{workspace.id}:{at}", at=at,
                                  config=self.config)
            if event is not None:
                events.append(event)
        return events

    def for_stories(self, page: Page) -> list[Any]:
        """A story change refreshes its project's tasks (``project.updated``);
        a milestone's also becomes ``milestone.updated``."""
        spaces = self.workspaces(s.get("workspace_id") for s in page.records)
        for story in page.records:  # a project's tasks as read now, not earlier in the poll
            known = self._stories.get(str(story.get("workspace_id")))
            if known is not None:
                known[:] = [s for s in known if s.get("id") != story.get("id")] + [story]
        events: list[Any] = []
        for story in page.records:
            workspace = spaces.get(str(story.get("workspace_id")))
            if story.get("story_type") == "milestone":
                milestone = milestone_event(story, workspace,
                                            custom_values(story, page.objects), self.config)
                if milestone is not None:
                    events.append(milestone)
            if workspace is not None and workspace.code is not None:
                at = stamp_seconds(story.get("updated_at"))
                project = project_event(workspace, self.stories_of(workspace.id),
                                        event_id=f"story:{story.get('id')}:{at}", at=at,
                                        config=self.config)
                if project is not None:
                    events.append(project)
        return events

    def for_submissions(self, page: Page) -> list[Any]:
        """An approval, rejection or cancellation changes the status of every
        entry on the submission, whether or not the entries' own stamps move."""
        resource, ids_key, _pointer = SUBMISSIONS[page.key]
        changed: dict[str, int] = {}
        for submission in page.records:
            stamp = stamp_seconds(submission.get("updated_at")) or 0
            for record_id in submission.get(ids_key) or []:
                changed[str(record_id)] = max(stamp, changed.get(str(record_id), 0))
        if not changed:
            return []
        records = self.client.by_ids(resource, sorted(changed), PARAMS[resource])
        return self.for_page(records, changed_at=changed)

    def deletions(self, resource: str, known: Mapping[str, str], at: int) -> list[Any]:
        """``*.deleted`` for the ids (→ their workspace ids) that Kantata no
        longer returns: asked by id, so an entry only moved out of a window,
        or changed, is not taken for deleted."""
        if not known:
            return []
        present = {str(r.get("id")) for r in self.client.by_ids(resource, sorted(known),
                                                                PARAMS[resource]).records}
        gone = [i for i in sorted(known) if i not in present]
        spaces = self.workspaces(known[i] for i in gone)
        events = []
        for record_id in gone:
            workspace = spaces.get(str(known[record_id]))
            events.append(deleted_event(resource, record_id,
                                        workspace.code if workspace else None, at,
                                        self.config))
        return events

    # -- Subscribed Events (the webhook path) --------------------------------------
    def for_subscribed_events(self, notes: Sequence[Mapping[str, Any]]) -> list[Any]:
        """Events for forwarded Subscribed Events. Nothing in a note is trusted
        but the subject's type and id: every record is read again from Kantata."""
        changed: dict[str, set[str]] = {}
        deleted: dict[str, dict[str, str]] = {}
        newest = 0
        for note in notes:
            kind, _, action = str(note.get("event_type") or "").partition(":")
            resource = RESOURCES.get(kind)
            subject = note.get("subject_id")
            if resource is None or subject in (None, ""):
                continue
            newest = max(newest, stamp_seconds(note.get("subject_changed_at")) or 0)
            if action == "deleted":
                previous = _payload(note.get("previous_payload"))
                deleted.setdefault(resource, {})[str(subject)] = str(
                    previous.get("workspace_id") or "")
            else:
                changed.setdefault(resource, set()).add(str(subject))
        events: list[Any] = []
        for resource in RESOURCES.values():  # projects first, then what refers to them
            if changed.get(resource):
                events += self.for_page(self.client.by_ids(resource, sorted(changed[resource]),
                                                           PARAMS[resource]))
            if deleted.get(resource) and resource in ("time_entries", "expenses"):
                events += self.deletions(resource, deleted[resource],
                                         newest or int(time.time()))
        return events


RESOURCES = {"workspace": "workspaces", "story": "stories", "time_entry": "time_entries",
             "timesheet_submission": "timesheet_submissions", "expense": "expenses",
             "expense_report_submission": "expense_report_submissions"}
"""Subscribed Event type prefix → the resource that is read again."""
RECORD_TYPES = {resource: kind for kind, resource in RESOURCES.items()}
"""A resource → its record type in the contract (connectors/kantata/contract.py)."""


def _payload(value: Any) -> Mapping[str, Any]:
    """A Subscribed Event payload: documented as a string (of JSON)."""
    if isinstance(value, Mapping):
        return value
    try:
        parsed = json.loads(str(value)) if value else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, Mapping) else {}
