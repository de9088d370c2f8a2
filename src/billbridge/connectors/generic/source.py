"""The generic time source as a polled ``Source``: pages of entries become
``time_entry.upserted`` events; the cursor is the newest ``updated_at`` seen.

Paging is by key, not by page number: each request asks again from the
newest ``updated_at`` seen (inclusive), so an entry edited during a poll, which
moves to the end, cannot shift another entry past a page boundary unseen.
Page numbers are used only to walk through more entries sharing one instant
than fit a page. The inbox drops the entries re-read at the boundary.
"""

from __future__ import annotations

from collections.abc import Iterator

from billbridge.connectors.base import PermanentError, PollPage
from billbridge.connectors.contracts import ContractWatch
from billbridge.connectors.generic.client import TimeSourceClient
from billbridge.connectors.generic.contract import CONTRACT
from billbridge.connectors.generic.mapping import SOURCE, time_entry_event


class GenericTimeSource:
    def __init__(self, base_url: str, *, name: str = SOURCE, per_page: int = 100,
                 client: TimeSourceClient | None = None) -> None:
        self.name = name
        self.client = client or TimeSourceClient(base_url, per_page=per_page)
        self.contracts = ContractWatch(CONTRACT)

    def poll(self, cursor: str | None) -> Iterator[PollPage]:
        since, number = cursor, 1
        seen: set[tuple[str | None, tuple[str, ...]]] = set()
        while True:
            page = self.client.fetch(since, number)
            if not page.entries:
                return
            # The same entries offered again for the same position means the
            # source is not paging: stop rather than loop for ever.
            signature = (since, tuple(f"{e.get('id')}:{e.get('version')}" for e in page.entries))
            if signature in seen or page.page != number:
                raise PermanentError(f"{self.name}: asked for page {number} after {since} and "
                                     f"got page {page.page} again; stopping instead of looping",
                                     code="PAGINATION_LOOP")
            seen.add(signature)
            newest = max(str(e.get("updated_at") or "") for e in page.entries)
            self.contracts.read_all("time_entry", page.entries)
            yield PollPage([time_entry_event(e, source=self.name) for e in page.entries],
                           newest or since)
            if page.next_page is None:
                return
            if newest and newest != since:
                since, number = newest, 1
            else:
                number += 1  # a full page at one instant: walk its pages
