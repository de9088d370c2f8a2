"""Tempo worklogs as a polled ``Source``.

Each poll takes three steps, and stores its cursor with every page
(``engine.sync``), so a poll cut off mid-way resumes from its last page:

1. **Changes.** ``POST /worklogs/search`` with ``updatedFrom``, ordered by
   ``updatedAt`` (``orderBy``, a setting), paged by key: Tempo stamps to the
   second, so every query asks from ``lookback_seconds`` before the newest
   stamp stored, and after each page the query starts again from the newest
   stamp seen. Records sharing a stamp are read again (the inbox drops the
   repeats), never skipped, and an edit or deletion during the poll cannot
   shift an unread worklog past an offset: offsets only walk a page that is
   all one second. A page that repeats the one before stops the poll
   (``PAGINATION_LOOP``).
2. **Approvals.** Approval lives on the author's timesheet, not the worklog,
   and nothing says approving changes the worklog's ``updatedAt``. Every
   worklog is mapped under its timesheet's approval (read once a poll per
   author and period), and the approvals of periods seen in the trailing
   ``approval_window_days`` are read again each poll: one whose status
   changed re-emits its author's worklogs of that period under the new status.
3. **Deletions.** ``updatedFrom`` does not return deleted worklogs (unverified):
   at most every ``reconcile_every`` seconds the worklogs dated in the trailing
   ``deletion_window_days`` are listed, and a known one missing that Tempo
   answers 404 for becomes ``time_entry.deleted``, and one listed that no
   search returned, or that could not be mapped when it was (an author not
   mapped yet), is mapped again. Jira's signed worklog webhooks
   (``webhooks.py``) report deletions sooner where they are set up.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from billbridge.connectors.base import Malformed, PermanentError, PollPage
from billbridge.connectors.contracts import ContractWatch, name_drift
from billbridge.connectors.paging import PageGuard, cursor_json
from billbridge.connectors.tempo.client import LIMIT_MAX, TempoClient
from billbridge.connectors.tempo.contract import CONTRACT
from billbridge.connectors.tempo.mapping import (
    SOURCE,
    MappingConfig,
    approval_state,
    author_of,
    deleted_event,
    period,
    project_of,
    stamp,
    unmapped_issue,
    worklog_event,
)

CURSOR_VERSION = 1

Periods = dict[str, dict[str, list[str]]]
"""accountId → period start → [period end, status key, status updatedAt]."""


def iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Cursor:
    since: int | None = None  # the newest updatedAt stored, in Unix seconds
    approvals: Periods = field(default_factory=dict)
    known: dict[str, list[str]] = field(default_factory=dict)
    """Tempo worklog id → [Jira worklog id, project, startDate, "1" when it was
    mapped] in the deletion window."""
    reconciled_at: float = 0.0

    @classmethod
    def decode(cls, value: str | None) -> Cursor:
        raw = cursor_json(value)
        if isinstance(raw, str):  # an operator's start instant
            start = stamp(raw)
            return cls(since=int(start.timestamp()) if start else None)
        if raw.get("version") != CURSOR_VERSION:
            return cls()  # re-reads from the beginning; the inbox drops the repeats
        since = stamp(raw.get("since"))
        return cls(int(since.timestamp()) if since else None, dict(raw.get("approvals") or {}),
                   dict(raw.get("known") or {}), float(raw.get("reconciled_at") or 0))

    def encode(self) -> str:
        return json.dumps({"version": CURSOR_VERSION,
                           "since": iso(self.since) if self.since is not None else None,
                           "approvals": self.approvals, "known": self.known,
                           "reconciled_at": self.reconciled_at},
                          sort_keys=True, separators=(",", ":"))


class Approvals:
    """What one poll read once: timesheet approvals by author and period, and
    Jira issue keys."""

    def __init__(self, client: TempoClient, contracts: ContractWatch) -> None:
        self.client = client
        self.contracts = contracts
        self.read: dict[str, list[tuple[str, str, Mapping[str, Any]]]] = {}
        self.keys: dict[str, str | None] = {}

    def of(self, author: str, day: str) -> Mapping[str, Any]:
        for start, end, approval in self.read.get(author, []):
            if start <= day <= end:
                return approval
        approval = self.client.approval(author, day)
        self.contracts.read("approval", approval)
        start, end = period(approval) or (day, day)
        self.read.setdefault(author, []).append((start, end, approval))
        return approval


class TempoSource:
    def __init__(self, client: TempoClient, *, name: str = SOURCE,
                 config: MappingConfig | None = None, limit: int = 1000,
                 lookback_seconds: int = 1, approval_window_days: int = 62,
                 deletion_window_days: int = 35, reconcile_every: float = 3600.0,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.name = name
        self.client = client
        self.config = config or MappingConfig(source=name)
        self.limit = max(1, min(limit, LIMIT_MAX))
        self.lookback = max(1, lookback_seconds)  # stamps are whole seconds
        self.approval_window = timedelta(days=approval_window_days)
        self.deletion_window = timedelta(days=deletion_window_days)
        self.reconcile_every = reconcile_every
        self.now = now
        self.contracts = ContractWatch(CONTRACT)

    def poll(self, cursor: str | None) -> Iterator[PollPage]:
        state = Cursor.decode(cursor)
        approvals = Approvals(self.client, self.contracts)
        yield from self._changes(state, approvals)
        yield from self._approvals(state, approvals)
        if self.deletion_window and \
                self.now().timestamp() - state.reconciled_at >= self.reconcile_every:
            yield self._reconcile(state, approvals)

    # -- mapping, and what the cursor remembers of it ---------------------------------------
    def _map(self, worklog: Mapping[str, Any], state: Cursor,
             approvals: Approvals) -> dict[str, Any] | Malformed:
        author, day = author_of(worklog), str(worklog.get("startDate") or "")
        approval = approvals.of(author, day) if author and day else None
        if approval is not None and author:
            # A period already watched keeps the status its worklogs were last
            # emitted under until step 2 re-emits them all under the new one.
            self._note_approval(state, author, approval, replace=False)
        issue = unmapped_issue(worklog, self.config)
        key = self.client.issue_key(issue, approvals.keys) if issue else None
        event = name_drift(worklog_event(worklog, approval, self.config, key),
                           self.contracts.read("worklog", worklog))
        if day >= self._start(self.deletion_window).isoformat():
            # A worklog in the deletion window, for the next comparison of id sets;
            # one that could not be mapped is mapped again then (a fix may have come).
            state.known[str(worklog.get("tempoWorklogId"))] = [
                str(worklog.get("jiraWorklogId")), project_of(worklog, self.config) or "",
                day, "0" if isinstance(event, Malformed) else "1"]
        return event

    @staticmethod
    def _note_approval(state: Cursor, author: str, approval: Mapping[str, Any], *,
                       replace: bool = True) -> None:
        span = period(approval)
        if span is None:
            return
        periods = state.approvals.setdefault(author, {})
        if replace or span[0] not in periods:
            periods[span[0]] = [span[1], *approval_state(approval)]

    def _start(self, window: timedelta) -> date:
        return (self.now() - window).date()

    # -- 1. changes ------------------------------------------------------------------------------
    def _changes(self, state: Cursor, approvals: Approvals) -> Iterator[PollPage]:
        since, offset = state.since, 0
        guard = PageGuard(f"{self.name}: worklog search")
        previous: tuple[str, ...] = ()
        while True:
            guard.once((since, offset), f"updatedFrom {since} offset {offset}")
            page = self.client.search(
                updated_from=iso(since - self.lookback) if since is not None else None,
                offset=offset, limit=self.limit)
            if not page.records:
                return
            ids = tuple(str(r.get("tempoWorklogId")) for r in page.records)
            if offset and ids == previous:
                raise PermanentError(f"{self.name}: the worklogs at offset {offset} repeat the "
                                     "page before; stopping instead of looping",
                                     code="PAGINATION_LOOP")
            previous = ids
            events = [self._map(r, state, approvals) for r in page.records]
            stamps = [s for r in page.records if (s := stamp(r.get("updatedAt")))]
            newest = max([int(s.timestamp()) for s in stamps] + [since or 0])
            if since is None or newest > since:
                since, offset = newest, 0  # keyset: ask again from the newest stamp
            else:
                offset += len(page.records)  # a whole page in one second: walk it
            state.since = since
            yield PollPage(events, state.encode())
            if not page.more:
                return

    # -- 2. approvals ----------------------------------------------------------------------------
    def _approvals(self, state: Cursor, approvals: Approvals) -> Iterator[PollPage]:
        first = self._start(self.approval_window).isoformat()
        for author in sorted(state.approvals):
            periods = state.approvals[author]
            for start in sorted(periods):
                end, key, when = periods[start]
                if end < first:
                    del periods[start]  # out of the window: no longer watched
                    continue
                approval = approvals.of(author, start)
                if list(approval_state(approval)) == [key, when]:
                    continue
                events = [self._map(w, state, approvals) for w in self.client.walk(
                    f"/worklogs/user/{author}", {"from": start, "to": end})]
                self._note_approval(state, author, approval)
                yield PollPage(events, state.encode())
            if not periods:
                del state.approvals[author]

    # -- 3. deletions ----------------------------------------------------------------------------
    def _reconcile(self, state: Cursor, approvals: Approvals) -> PollPage:
        start = self._start(self.deletion_window)
        end = (self.now() + timedelta(days=366)).date()
        current = {str(w.get("tempoWorklogId")): w for w in self.client.walk(
            "/worklogs", {"from": start.isoformat(), "to": end.isoformat()})}
        events: list[Any] = []
        for tempo_id, (jira_id, project, day, *_mapped) in sorted(state.known.items()):
            if tempo_id in current or day < start.isoformat():
                continue
            found = self.client.worklog(tempo_id)  # Tempo confirms with a 404
            if found is None:
                events.append(deleted_event(jira_id, project or None, at=self.now(),
                                            config=self.config))
            else:
                events.append(self._map(found, state, approvals))
        previous, state.known = state.known, {}
        for tempo_id, worklog in current.items():
            if previous.get(tempo_id, [])[3:] == ["1"]:
                state.known[tempo_id] = previous[tempo_id]
            else:  # never read by a search, or not mappable when it was
                events.append(self._map(worklog, state, approvals))
        state.reconciled_at = self.now().timestamp()
        return PollPage(events, state.encode())
