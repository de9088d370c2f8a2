"""Replicon timesheets and expense sheets as a polled ``Source``.

Replicon documents no modified-since query and no approval webhook signature
(more-vendors.md section 4), so each poll walks a list service
(``TimesheetListService1.svc/GetData``, ``ExpenseSheetListService1.svc/
GetData``: ``page``, ``pagesize``, ``columnUris``, ``sort``,
``filterExpression``) filtered on the sheets' last-modified date-time and
sorted by it, then by the sheet's uri. Service, column and filter uris are
settings (``ListSpec``): Replicon does not publish them.

Paging is by key, as Kantata's: every request asks from the newest stamp
stored (``>=``), so sheets sharing it are listed again and skipped by the
uris stored at that stamp (``edge``), never missed; after each page the query
starts again from the newest stamp seen, and page numbers only walk a page
that is all one stamp. A page that lists the same sheets as the page before
stops with ``PAGINATION_LOOP``. The cursor is stored with every page.

A sheet listed with a stamp newer than the one applied is read: its approval
status (``GetTimesheetSummary``) and its cells (``GetStandardTimesheet2``),
or its expense details. Each entry is sent only when what it says changed
since the sheet was last read (the cursor keeps a fingerprint per entry), an
entry gone from the sheet becomes ``*.deleted``, and an un-approval sends
every entry again as no longer approved. A sheet that was never approved and
holds nothing billbridge sent is not read further. A sheet with an entry the
mapping could not read is read again every poll, so a mapping fix picks it up.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from billbridge.connectors.base import Malformed, PermanentError, PollPage
from billbridge.connectors.contracts import ContractWatch, Drift, name_drift
from billbridge.connectors.paging import PageGuard, stream_cursor
from billbridge.connectors.replicon.client import PAGE_SIZE, RepliconClient
from billbridge.connectors.replicon.contract import CONTRACT
from billbridge.connectors.replicon.mapping import (
    SOURCE,
    Entry,
    MappingConfig,
    deleted_event,
    expense_entries,
    parse_stamp,
    stamp_ms,
    status_of,
    timesheet_entries,
)

CURSOR_VERSION = 1
GE = "urn:replicon:filter-operator:greater-than-or-equal"


@dataclass(frozen=True)
class ListSpec:
    """A list service and the uris that read it (unverified: settings)."""

    service: str
    sheet_column: str
    modified_column: str
    modified_filter: str

    def body(self, since: datetime | None, page: int, pagesize: int) -> dict[str, Any]:
        """The ``GetData`` request: sheets modified at or after ``since``
        (page and pagesize are strings, as the published description types them)."""
        body: dict[str, Any] = {
            "page": str(page), "pagesize": str(pagesize),
            "columnUris": [self.sheet_column, self.modified_column],
            "sort": [{"columnUri": self.modified_column, "isAscending": True},
                     {"columnUri": self.sheet_column, "isAscending": True}]}
        if since is not None:
            body["filterExpression"] = {
                "leftExpression": {"filterDefinitionUri": self.modified_filter},
                "operatorUri": GE,
                "rightExpression": {"value": {"dateTimeUtc": _utc_object(since)}}}
        return body


def _utc_object(when: datetime) -> dict[str, int]:
    when = when.astimezone(UTC)
    return {"year": when.year, "month": when.month, "day": when.day, "hour": when.hour,
            "minute": when.minute, "second": when.second,
            "millisecond": when.microsecond // 1000}


TIMESHEETS = ListSpec("TimesheetListService1", "urn:replicon:timesheet-list-column:timesheet",
                      "urn:replicon:timesheet-list-column:last-modified-date-time",
                      "urn:replicon:timesheet-list-filter:last-modified-date-time")
EXPENSE_SHEETS = ListSpec("ExpenseSheetListService1",
                          "urn:replicon:expense-sheet-list-column:expense-sheet",
                          "urn:replicon:expense-sheet-list-column:last-modified-date-time",
                          "urn:replicon:expense-sheet-list-filter:last-modified-date-time")


def list_spec(options: Mapping[str, Any], prefix: str, default: ListSpec) -> ListSpec:
    """``<prefix>_list_service``, ``_sheet_column``, ``_modified_column``,
    ``_modified_filter`` from a connection's options, else the defaults."""
    return ListSpec(*(str(options.get(f"{prefix}_{name}") or getattr(default, name))
                      for name in ("service", "sheet_column", "modified_column",
                                   "modified_filter")))


@dataclass
class StreamState:
    """One stream's place: the newest stamp stored, the sheets stored at it,
    and per sheet the version applied and its entries as sent."""

    since: str | None = None
    edge: list[str] = field(default_factory=list)
    sheets: dict[str, dict[str, Any]] = field(default_factory=dict)  # uri → {v, e}
    retry: list[str] = field(default_factory=list)  # sheets with an unmappable entry

    def dump(self) -> dict[str, Any]:
        return {"since": self.since, "edge": sorted(self.edge), "sheets": self.sheets,
                "retry": sorted(self.retry)}

    @classmethod
    def load(cls, data: Mapping[str, Any]) -> StreamState:
        return cls(data.get("since"), list(data.get("edge") or []),
                   dict(data.get("sheets") or {}), list(data.get("retry") or []))


def _worse(first: Drift, second: Drift) -> Drift:
    """The drift to name on a sheet's entries: the sheet's own, else its summary's."""
    return second if second else first


def _named(entries: list[Entry], drift: Drift) -> list[Entry]:
    """Entries that could not be mapped, their reason naming the sheet's drift."""
    return [replace(e, event=name_drift(e.event, drift)) for e in entries]


def _sent(known: Mapping[str, Any]) -> bool:
    """Whether a sheet's entries were sent (or kept raw) when it was last read."""
    return bool(known.get("e") or known.get("m"))


Reader = Callable[[str, Mapping[str, Any], int, datetime], list[Entry] | None]
"""(sheet uri, the sheet as last read, version, stamp) → its entries, or None
when the sheet holds nothing to send (never approved, nothing sent before)."""


@dataclass(frozen=True)
class Stream:
    name: str  # the cursor's key
    kind: str  # "time_entry" or "expense"
    spec: ListSpec
    read: Reader


class RepliconSource:
    def __init__(self, client: RepliconClient, *, name: str = SOURCE,
                 config: MappingConfig | None = None, page_size: int = PAGE_SIZE,
                 timesheets: ListSpec = TIMESHEETS, expense_sheets: ListSpec | None =
                 EXPENSE_SHEETS, keep_days: int = 400,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.name = name
        self.client = client
        self.config = config or MappingConfig(source=name)
        self.page_size = max(1, page_size)
        self.keep = timedelta(days=keep_days)
        self.now = now
        self._read: set[str] = set()  # sheets read by this poll's walk of a stream
        self.contracts = ContractWatch(CONTRACT)
        self.streams = [Stream("timesheets", "time_entry", timesheets, self._timesheet)]
        if expense_sheets is not None:
            self.streams.append(Stream("expense_sheets", "expense", expense_sheets,
                                       self._expense_sheet))

    # -- reading one sheet ----------------------------------------------------------------
    def _timesheet(self, uri: str, known: Mapping[str, Any], version: int,
                   at: datetime) -> list[Entry] | None:
        summary = self.client.timesheet_summary(uri)
        drift = self.contracts.read("timesheet_summary", summary)
        approval = summary.get("approvalStatus")
        if status_of(approval) != "approved" and not _sent(known):
            return None
        sheet = self.client.standard_timesheet(uri)
        drift = _worse(drift, self.contracts.read("timesheet", sheet))
        return _named(timesheet_entries(sheet, approval, version=version, at=at,
                                        config=self.config), drift)

    def _expense_sheet(self, uri: str, known: Mapping[str, Any], version: int,
                       at: datetime) -> list[Entry] | None:
        sheet = self.client.expense_sheet(uri)
        drift = self.contracts.read("expense_sheet", sheet)
        if status_of(sheet.get("approvalStatus")) != "approved" and not _sent(known):
            return None
        return _named(expense_entries(sheet, version=version, at=at, config=self.config), drift)

    def _apply(self, stream: Stream, state: StreamState, uri: str,
               stamp: datetime) -> list[Any]:
        """The events of one sheet read at ``stamp``, its state updated."""
        version = stamp_ms(stamp)
        known = state.sheets.get(uri) or {}
        entries = stream.read(uri, known, version, stamp)
        retry = set(state.retry) - {uri}
        if entries is None:  # never approved, nothing sent: nothing to keep either
            state.sheets.pop(uri, None)
            state.retry = sorted(retry)
            return []
        before: dict[str, list[str]] = dict(known.get("e") or {})
        after: dict[str, list[str]] = {}
        events: list[Any] = []
        for entry in entries:
            if isinstance(entry.event, Malformed):
                events.append(entry.event)
                if entry.id in before:  # what was sent stands until the entry reads again
                    after[entry.id] = before[entry.id]
                continue
            after[entry.id] = [entry.project, entry.mark]
            if before.get(entry.id) != after[entry.id]:
                events.append(entry.event)
        present = {entry.id for entry in entries}
        for entry_id, (project, _mark) in sorted(before.items()):
            if entry_id not in present:
                events.append(deleted_event(stream.kind, entry_id, project or None,
                                            version=version, at=stamp, config=self.config))
        state.sheets[uri] = {"v": version, "e": after}
        self._read.add(uri)
        if any(isinstance(entry.event, Malformed) for entry in entries):
            retry.add(uri)
            state.sheets[uri]["m"] = 1  # kept raw: an un-approval must reach it too
        state.retry = sorted(retry)
        return events

    # -- polling --------------------------------------------------------------------------
    def poll(self, cursor: str | None) -> Iterator[PollPage]:
        states = self._load(cursor)
        for stream in self.streams:
            self._read = set()
            state = states.setdefault(stream.name, StreamState())
            for events in self._walk(stream, state):
                yield PollPage(events, self._dump(states))
            events = self._again(stream, state)
            if events:
                yield PollPage(events, self._dump(states))

    @staticmethod
    def _dump(states: Mapping[str, StreamState]) -> str:
        return json.dumps({"version": CURSOR_VERSION,
                           **{name: s.dump() for name, s in states.items()}},
                          sort_keys=True, separators=(",", ":"))

    @staticmethod
    def _load(cursor: str | None) -> dict[str, StreamState]:
        return {name: StreamState.load(value)
                for name, value in stream_cursor(cursor, CURSOR_VERSION).items()}

    def _walk(self, stream: Stream, state: StreamState) -> Iterator[list[Any]]:
        """The sheets modified since the cursor, a list of events per page."""
        since = parse_stamp(state.since)
        page, previous = 1, tuple[str, ...]()
        guard = PageGuard(f"{self.name}: {stream.spec.service}")
        while True:
            guard.once((since, page), f"the page {page} from {state.since}")
            found = self.client.list_page(stream.spec.service,
                                          stream.spec.body(since, page, self.page_size))
            listed = self._listed(stream, found.rows)
            uris = tuple(uri for uri, _stamp in listed)
            if not found.rows:
                return
            if page > 1 and uris == previous:
                raise PermanentError(f"{self.name}: {stream.spec.service} page {page} lists "
                                     f"the sheets of page {page - 1} again; stopping instead "
                                     "of looping", code="PAGINATION_LOOP")
            previous = uris
            edge = set(state.edge)
            events: list[Any] = []
            for uri, stamp in listed:
                if since is not None and (stamp < since or (stamp == since and uri in edge)):
                    continue
                events += self._apply(stream, state, uri, stamp)
            newest = max([s for _u, s in listed] + ([since] if since else []), default=None)
            if newest is not None:
                at_newest = {u for u, s in listed if s == newest}
                state.edge = sorted(at_newest | (edge if newest == since else set()))
                state.since = newest.isoformat()
            self._prune(state)
            yield events
            if len(found.rows) < self.page_size:
                return
            if newest is not None and (since is None or newest > since):
                since, page, previous = newest, 1, ()  # keyset: ask again from the newest
            else:
                page += 1  # a whole page at one stamp: walk it by number

    def _listed(self, stream: Stream, rows: list[dict[str, dict[str, Any]]]
                ) -> list[tuple[str, datetime]]:
        listed = []
        for row in rows:
            uri = (row.get(stream.spec.sheet_column) or {}).get("uri")
            cell = row.get(stream.spec.modified_column) or {}
            stamp = parse_stamp(cell.get("dateTimeValue") or cell.get("textValue"))
            if not uri or stamp is None:
                raise PermanentError(f"{self.name}: {stream.spec.service} listed a sheet "
                                     f"without its uri or last-modified stamp ({row}): check "
                                     "the list's column settings", code="UNEXPECTED_ANSWER")
            listed.append((str(uri), stamp))
        return listed

    def _again(self, stream: Stream, state: StreamState) -> list[Any]:
        """Sheets with an entry the mapping could not read, read again."""
        events: list[Any] = []
        for uri in [u for u in state.retry if u not in self._read]:
            version = int((state.sheets.get(uri) or {}).get("v") or 0)
            events += self._apply(stream, state, uri,
                                  datetime.fromtimestamp(version / 1000, UTC))
        return events

    def _prune(self, state: StreamState) -> None:
        """Forget sheets unchanged for ``keep_days``: the cursor stays small."""
        oldest = stamp_ms(self.now() - self.keep)
        for uri in [u for u, s in state.sheets.items() if int(s.get("v") or 0) < oldest]:
            del state.sheets[uri]
