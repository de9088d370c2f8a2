"""The generic time source as a polled ``Source``: pages of entries become
``time_entry.upserted`` events; the cursor is the newest ``updated_at`` seen.

The source's ``updated_since`` is inclusive, so a resumed poll re-reads the
entries at the cursor's instant (the inbox drops them as repeats) and never
skips one that shares it.
"""

from __future__ import annotations

from collections.abc import Iterator

from billbridge.connectors.base import PollPage
from billbridge.connectors.generic.client import TimeSourceClient
from billbridge.connectors.generic.mapping import SOURCE, time_entry_event


class GenericTimeSource:
    def __init__(self, base_url: str, *, name: str = SOURCE, per_page: int = 100) -> None:
        self.name = name
        self.client = TimeSourceClient(base_url, per_page=per_page)

    def poll(self, cursor: str | None) -> Iterator[PollPage]:
        newest = cursor
        for page in self.client.iter_pages(updated_since=cursor):
            stamps = [str(e["updated_at"]) for e in page.entries if e.get("updated_at")]
            if stamps:
                newest = max([*stamps, newest] if newest else stamps)
            yield PollPage([time_entry_event(e, source=self.name) for e in page.entries], newest)
