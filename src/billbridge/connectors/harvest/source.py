"""Harvest time entries and expenses as a polled ``Source``.

Harvest has no webhooks, and it lists time entries and expenses by
``spent_date``, newest first, in numbered pages, not by ``updated_at``. So an
``updated_since`` cursor cannot advance page by page, and a numbered page
shifts when an entry before it is deleted. Each poll of a stream therefore:

1. **reads the changes**: ``updated_since=<window start>``, keyset on
   ``spent_date``: after a page spanning several dates the next query asks
   ``to=<oldest date on it>`` (that date is read again, the inbox drops the
   repeats), so a deletion on an earlier page cannot shift an unread record
   past us. ``links.next`` is followed only through a page of a single date.
2. **takes a snapshot** of the deletion window (``from=<today - N days>``) the
   same way, and compares the ids in it with the ids known there before: a
   known id missing from the snapshot that Harvest answers 404 for becomes
   ``time_entry.deleted`` / ``expense.deleted``; a snapshot record never
   emitted in its current version (or one that could not be mapped) is
   emitted again, which heals anything a read missed.
3. **moves the window**: only after a complete read does the next window
   start, at the server time (``Date``) when this read began, less an
   overlap. Until then every page's cursor says where the read stands (the
   phase, the ``to`` date, a next link), so a poll cut off mid-way resumes
   from its last committed page.

The cursor (JSON) also carries the ids known in the deletion window, grouped
by date and project: the connector may not touch the store, and the cursor is
what the engine keeps for it, committed with every page's events.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from billbridge.connectors.base import Malformed, PermanentError, PollPage
from billbridge.connectors.contracts import ContractWatch, name_drift
from billbridge.connectors.harvest.client import PER_PAGE_MAX, HarvestClient, Page
from billbridge.connectors.harvest.contract import CONTRACT
from billbridge.connectors.harvest.mapping import (
    SOURCE,
    MappingConfig,
    deleted_event,
    expense_event,
    time_entry_event,
)
from billbridge.connectors.paging import PageGuard, stream_cursor

CURSOR_VERSION = 1
CHANGES, SNAPSHOT = "changes", "snapshot"

Known = dict[int, tuple[str, str, str]]
"""Harvest id → (spent_date, project code, updated_at) of records in the deletion window."""


@dataclass
class StreamState:
    """Where one stream's read stands; saved in the cursor after every page."""

    since: str | None = None  # updated_since of the window being read; None: all history
    started: str | None = None  # server time when the read in progress began
    phase: str | None = None  # CHANGES, SNAPSHOT, or None between reads
    to: str | None = None  # keyset: the next query asks spent_date <= to
    next_url: str | None = None  # links.next while walking the pages of one date
    known: Known = field(default_factory=dict)  # ids in the deletion window, as last read
    snap: Known = field(default_factory=dict)  # ids seen by the snapshot in progress

    def dump(self) -> dict[str, Any]:
        return {"since": self.since, "started": self.started, "phase": self.phase,
                "to": self.to, "next_url": self.next_url, "known": _group(self.known),
                "snap": _group(self.snap)}

    @classmethod
    def load(cls, data: Mapping[str, Any]) -> StreamState:
        return cls(since=data.get("since"), started=data.get("started"),
                   phase=data.get("phase"), to=data.get("to"), next_url=data.get("next_url"),
                   known=_ungroup(data.get("known") or {}), snap=_ungroup(data.get("snap") or {}))


def _group(known: Known) -> dict[str, dict[str, dict[str, str]]]:
    """{date: {project: {id: updated_at}}}: about 40 bytes a record."""
    grouped: dict[str, dict[str, dict[str, str]]] = {}
    for harvest_id, (day, project, stamp) in sorted(known.items()):
        grouped.setdefault(day, {}).setdefault(project, {})[str(harvest_id)] = stamp
    return grouped


def _ungroup(grouped: Mapping[str, Any]) -> Known:
    return {int(harvest_id): (day, project, stamp)
            for day, projects in grouped.items() for project, ids in projects.items()
            for harvest_id, stamp in ids.items()}


@dataclass(frozen=True)
class Stream:
    """A Harvest list polled as one stream: its resource and how a record maps."""

    resource: str  # "time_entries" or "expenses": the path and the list's key
    kind: str  # "time_entry" or "expense": the canonical event kind
    map: Callable[[Mapping[str, Any]], dict[str, Any] | Malformed]


class HarvestSource:
    def __init__(self, client: HarvestClient, *, name: str = SOURCE,
                 config: MappingConfig | None = None, per_page: int = PER_PAGE_MAX,
                 deletion_window_days: int = 35, overlap_seconds: float = 60.0,
                 start_date: str | None = None, expenses: bool = True) -> None:
        self.name = name
        self.client = client
        self.config = config or MappingConfig(source=name)
        self.per_page = max(1, min(per_page, PER_PAGE_MAX))
        self.deletion_window_days = deletion_window_days
        self.overlap = timedelta(seconds=overlap_seconds)
        self.start_date = start_date
        self.codes: dict[int, str] | None = None  # Harvest project id → code, once a poll
        self.contracts = ContractWatch(CONTRACT)
        self.streams = [Stream("time_entries", "time_entry", self._checked(
            "time_entry", self._map_entry))]
        if expenses:
            self.streams.append(Stream("expenses", "expense", self._checked(
                "expense", lambda r: expense_event(r, self.config))))

    def _checked(self, kind: str, read: Callable[[Mapping[str, Any]], Any]
                 ) -> Callable[[Mapping[str, Any]], Any]:
        """``read`` with each record checked against the contract first."""
        return lambda record: name_drift(read(record), self.contracts.read(kind, record))

    # -- mapping ---------------------------------------------------------------------
    def _map_entry(self, entry: Mapping[str, Any]) -> dict[str, Any] | Malformed:
        """Time entries name their project by id (the documented shape has no
        code): the account's project codes are read once a poll, when needed."""
        project = entry.get("project")
        if self.codes is None and isinstance(project, Mapping) and not project.get("code"):
            self.codes = {p["id"]: str(p["code"]) for p in self.client.all("projects")
                          if isinstance(p.get("id"), int) and p.get("code")}
        return time_entry_event(entry, self.codes or {}, self.config)

    # -- polling ---------------------------------------------------------------------
    def poll(self, cursor: str | None) -> Iterator[PollPage]:
        states = self._load(cursor)
        self.codes = None  # codes can change in Harvest between polls
        for stream in self.streams:
            state = states.setdefault(stream.resource, StreamState())
            for events in self._read(stream, state):
                yield PollPage(events, json.dumps(
                    {"version": CURSOR_VERSION,
                     **{name: s.dump() for name, s in states.items()}}))

    @staticmethod
    def _load(cursor: str | None) -> dict[str, StreamState]:
        return {name: StreamState.load(value)
                for name, value in stream_cursor(cursor, CURSOR_VERSION).items()}

    def _read(self, stream: Stream, state: StreamState) -> Iterator[list[Any]]:
        """One complete read of a stream (or the rest of an interrupted one):
        a list of events per page, the state updated before each is yielded."""
        if state.phase is None:
            state.phase, state.to, state.next_url, state.started = CHANGES, None, None, None
            state.snap = {}
        guard = PageGuard(f"{self.name}: {stream.resource}")
        walked: set[str] = set()
        while state.phase is not None:
            guard.once((state.phase, state.to, state.next_url))
            page = self._fetch(stream, state)
            if state.started is None:
                state.started = (page.server_time or datetime.now(UTC)).isoformat()
            if state.phase == CHANGES:
                events = self._changes(stream, state, page)
            else:
                events = self._snapshot(stream, state, page)
            self._advance(stream, state, page, walked)
            if state.phase is None:
                events += self._finish(stream, state)
            yield events

    def _window_from(self, state: StreamState) -> str:
        started = datetime.fromisoformat(state.started or datetime.now(UTC).isoformat())
        first = (started.date() - timedelta(days=self.deletion_window_days)).isoformat()
        return max(first, self.start_date) if self.start_date else first

    def _fetch(self, stream: Stream, state: StreamState) -> Page:
        if state.next_url is not None:
            return self.client.follow(stream.resource, state.next_url)
        params: dict[str, Any] = {"per_page": self.per_page, "to": state.to}
        if state.phase == CHANGES:
            params.update(updated_since=state.since, **{"from": self.start_date})
        else:
            params["from"] = self._window_from(state)
        return self.client.page(stream.resource, params)

    def _changes(self, stream: Stream, state: StreamState, page: Page) -> list[Any]:
        events: list[Any] = []
        window = self._window_from(state)
        for record in page.records:
            event = stream.map(record)
            events.append(event)
            if isinstance(event, Malformed):
                continue
            if str(record["spent_date"]) >= window:
                state.known[record["id"]] = _known(record, event)
            else:  # moved out of the window: no longer compared
                state.known.pop(record["id"], None)
        return events

    def _snapshot(self, stream: Stream, state: StreamState, page: Page) -> list[Any]:
        """Record the ids in the window; emit what was never emitted as it is
        now (missed by a read, or not mappable before a fix)."""
        events: list[Any] = []
        for record in page.records:
            event = stream.map(record)
            if isinstance(event, Malformed):
                events.append(event)
                continue
            seen = _known(record, event)
            state.snap[record["id"]] = seen
            if state.known.get(record["id"]) != seen:
                events.append(event)
        return events

    def _advance(self, stream: Stream, state: StreamState, page: Page,
                 walked: set[str]) -> None:
        """Where the next page of this phase is, or the next phase."""
        dates = sorted({str(r["spent_date"]) for r in page.records
                        if isinstance(r.get("spent_date"), str)})
        if not page.records or page.next_url is None:
            state.to, state.next_url = None, None
            walked.clear()
            state.phase = SNAPSHOT if state.phase == CHANGES and \
                self.deletion_window_days > 0 else None
            return
        if state.to is not None and dates and dates[-1] > state.to:
            raise PermanentError(f"{self.name}: Harvest answered {stream.resource} dated "
                                 f"{dates[-1]} to a query for to={state.to}; stopping instead "
                                 "of looping", code="PAGINATION_LOOP")
        if dates and (len(dates) > 1 or state.to is None or dates[0] < state.to):
            # Keyset: ask again from the oldest date on this page (it is read again).
            state.to, state.next_url = dates[0], None
            walked.clear()
            return
        # A whole page on the date asked for: walk its pages; each must bring new records.
        ids = {str(r.get("id")) for r in page.records}
        if state.next_url is not None and ids <= walked:
            raise PermanentError(f"{self.name}: the next page of {stream.resource} to "
                                 f"{state.to} repeats records already read; stopping instead "
                                 "of looping", code="PAGINATION_LOOP")
        walked |= ids
        state.next_url = page.next_url

    def _finish(self, stream: Stream, state: StreamState) -> list[Any]:
        """After a complete read: deletions found by the snapshot, then the
        next window. Harvest confirms each with a 404, so a record a snapshot
        missed (or one moved out of the window) is never reported deleted."""
        events: list[Any] = []
        started = datetime.fromisoformat(state.started or datetime.now(UTC).isoformat())
        if self.deletion_window_days > 0:
            window = self._window_from(state)
            for harvest_id, (day, project, _stamp) in sorted(state.known.items()):
                if day < window or harvest_id in state.snap:
                    continue
                record = self.client.get(stream.resource, harvest_id)
                if record is None:
                    events.append(deleted_event(stream.kind, harvest_id, project or None,
                                                at=started, config=self.config))
                else:
                    events.append(stream.map(record))
            state.known, state.snap = state.snap, {}
        state.since = (started - self.overlap).astimezone(UTC).isoformat().replace(
            "+00:00", "Z")
        state.started = None
        return events


def _known(record: Mapping[str, Any], event: Mapping[str, Any]) -> tuple[str, str, str]:
    return (str(record["spent_date"]), str(event["data"]["project"]),
            str(record.get("updated_at")))

