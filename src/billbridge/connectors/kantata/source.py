"""Kantata as a polled ``Source``.

Six streams, each read with ``updated_after`` and ``order=updated_at:asc``:
projects (workspaces), stories, time entries and timesheet submissions,
expenses and expense report submissions; approvals live on the submissions,
so they are read too. Then, at most every ``reconcile_every`` seconds, the id
sets of time entries and expenses in a trailing window of work dates are
compared with those seen before, and the ids Kantata no longer returns become
``*.deleted`` events.

Paging is by key. Kantata stamps records to the second and ``updated_after``
is "after", so every request asks from one second before the newest stamp
stored: records sharing it are read again (the inbox drops them), never
skipped. After each page the query starts again from the newest stamp seen,
so an edit during the poll, which moves a record to the end, cannot shift an
unseen one past a page boundary; page numbers only walk a page that is all
one second. The cursor is stored with every page (``engine.sync``): an
interrupted poll resumes from its last stored page.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from billbridge.connectors.base import PermanentError, PollPage
from billbridge.connectors.contracts import ContractWatch
from billbridge.connectors.kantata.client import PER_PAGE_MAX, KantataClient
from billbridge.connectors.kantata.contract import CONTRACT
from billbridge.connectors.kantata.events import PARAMS, KantataEvents
from billbridge.connectors.kantata.mapping import (
    SOURCE,
    MappingConfig,
    iso,
    stamp_seconds,
)
from billbridge.connectors.paging import PageGuard, cursor_json

STREAMS = ("workspaces", "stories", "time_entries", "timesheet_submissions", "expenses",
           "expense_report_submissions")
# Resources whose deletions are found by comparing id sets, and the filter and
# field that place a record in the window.
WINDOWED = {"time_entries": ("date_performed_between", "date_performed"),
            "expenses": ("date_expensed_between", "date")}


@dataclass
class Cursor:
    """Where each stream stands: its newest stamp stored and the ids stored at
    that second (read again at the boundary, they are not mapped twice); the
    ids of windowed records seen (id → workspace id, for the project of a
    deletion); when id sets were last compared."""

    since: dict[str, int] = field(default_factory=dict)
    known: dict[str, dict[str, str]] = field(default_factory=dict)
    reconciled_at: float = 0.0
    edge: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def decode(cls, value: str | None) -> Cursor:
        raw = cursor_json(value)
        if isinstance(raw, str):
            start = stamp_seconds(raw)  # an operator's start instant, for every stream
            return cls(since=dict.fromkeys(STREAMS, start) if start else {})
        since = {k: s for k, v in (raw.get("since") or {}).items()
                 if (s := stamp_seconds(v)) is not None}
        known = {str(k): {str(i): str(w) for i, w in dict(v).items()}
                 for k, v in (raw.get("known") or {}).items()}
        edge = {str(k): [str(i) for i in v] for k, v in (raw.get("edge") or {}).items()}
        return cls(since, known, float(raw.get("reconciled_at") or 0), edge)

    def encode(self) -> str:
        return json.dumps({"since": {k: iso(v) for k, v in sorted(self.since.items())},
                           "edge": self.edge, "known": self.known,
                           "reconciled_at": self.reconciled_at},
                          sort_keys=True, separators=(",", ":"))


class KantataSource:
    def __init__(self, client: KantataClient, *, name: str = SOURCE,
                 config: MappingConfig | None = None, page_size: int = PER_PAGE_MAX,
                 lookback_seconds: int = 1, deletion_window_days: int = 31,
                 reconcile_every: float = 3600.0,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.name = name
        self.client = client
        self.config = config or MappingConfig(source=name)
        self.page_size = max(1, min(page_size, PER_PAGE_MAX))
        # At least 1 s: ``updated_after`` is exclusive and stamps are whole seconds.
        self.lookback = max(1, lookback_seconds)
        self.window = timedelta(days=deletion_window_days)
        self.reconcile_every = reconcile_every
        self.now = now
        self.contracts = ContractWatch(CONTRACT)

    def poll(self, cursor: str | None) -> Iterator[PollPage]:
        state = Cursor.decode(cursor)
        events = KantataEvents(self.client, self.config, self.contracts)
        for stream in STREAMS:
            yield from self._stream(stream, state, events)
        if self.window and self.now().timestamp() - state.reconciled_at >= self.reconcile_every:
            yield self._reconcile(state, events)

    def _stream(self, stream: str, state: Cursor,
                events: KantataEvents) -> Iterator[PollPage]:
        since = state.since.get(stream)
        number = 1
        guard = PageGuard(f"{self.name}: {stream}")
        previous: tuple[str, ...] = ()
        while True:
            guard.once((since, number), f"after {since} page {number}")
            params = {**PARAMS[stream], "order": "updated_at:asc"}
            if since is not None:
                params["updated_after"] = iso(since - self.lookback)
            page = self.client.page(stream, params, page=number, per_page=self.page_size)
            if not page.records:
                return
            ids = tuple(str(r.get("id")) for r in page.records)
            if number > 1 and ids == previous:
                raise PermanentError(f"{self.name}: {stream} page {number} repeats page "
                                     f"{number - 1}; stopping instead of looping",
                                     code="PAGINATION_LOOP")
            previous = ids
            stamps = {str(r.get("id")): stamp_seconds(r.get("updated_at")) for r in page.records}
            # Records stored before at the cursor's second are read again (a late
            # commit may share it); only the ones not stored yet are mapped.
            edge = set(state.edge.get(stream, []))
            fresh = [r for r in page.records
                     if not (since is not None and stamps[str(r.get("id"))] == since
                             and str(r.get("id")) in edge)]
            newest = max([*(s for s in stamps.values() if s), *([since] if since else [])],
                         default=None)
            mapped = events.for_page(replace(page, records=fresh))
            self._remember(stream, page.records, state)
            if newest is not None:
                at_newest = {i for i, s in stamps.items() if s == newest}
                state.edge[stream] = sorted(at_newest | (edge if newest == since else set()))
                state.since[stream] = newest
            yield PollPage(mapped, state.encode())
            if number >= page.page_count:
                return
            if newest is not None and (since is None or newest > since):
                since, number = newest, 1  # keyset: ask again from the newest stamp
            else:
                number += 1  # a whole page in one second: walk it by number

    def _window_start(self) -> date:
        return (self.now() - self.window).date()

    def _remember(self, stream: str, records: list[dict[str, Any]], state: Cursor) -> None:
        if stream not in WINDOWED:
            return
        start = self._window_start().isoformat()
        known = state.known.setdefault(stream, {})
        for record in records:
            if str(record.get(WINDOWED[stream][1]) or "") >= start:
                known[str(record.get("id"))] = str(record.get("workspace_id") or "")

    def _reconcile(self, state: Cursor, events: KantataEvents) -> PollPage:
        """Deletions: ids seen in the window that Kantata no longer returns."""
        start = self._window_start()
        end = (self.now() + timedelta(days=366)).date()
        found: list[Any] = []
        for resource, (between, _field) in WINDOWED.items():
            current: dict[str, str] = {}
            for page in self.client.pages(resource, {between: f"{start}:{end}",
                                                     "from_archived_workspaces": "true"}):
                current.update((str(r.get("id")), str(r.get("workspace_id") or ""))
                               for r in page.records)
            known = state.known.get(resource, {})
            missing = {i: w for i, w in known.items() if i not in current}
            found += events.deletions(resource, missing, int(self.now().timestamp()))
            state.known[resource] = current
        state.reconciled_at = self.now().timestamp()
        return PollPage(found, state.encode())
