"""What every vendor's upgrade preview shares: the events its connector reads
(one event type), the version a connection speaks when none is pinned, and
a reader that puts those events into the vendor's emulator and reads them
back with the real connector at a version. A vendor plugs in by giving a
``VendorPreview``; choosing the events, replacing them by what was read and
naming an event that no longer maps are done here once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from billbridge.connectors.base import Malformed, RateLimit, Source

Event = dict[str, Any]
Chosen = list[tuple[int, Event]]
"""The scenario's events a vendor's connector reads, with their places."""
Read = Callable[[Chosen, str], dict[int, Event]]
"""Those events at a version → each place's event as the connector read it
back (a place left out keeps its event)."""

UNLIMITED = RateLimit(10_000, 1, burst=10_000)
"""The preview's own emulators have no one else to share their limits with."""


@dataclass(frozen=True)
class VendorPreview:
    event_type: str
    default_version: str
    read: Read
    check: Callable[[str], object] | None = None
    """Refuses a version this vendor cannot speak (a ConfigError saying why),
    before any scenario runs."""

    def read_through(self, events: list[Event], version: str) -> list[Event]:
        """``events`` with each one of this vendor's type replaced by what the
        connector reads back at ``version``."""
        chosen = [(n, e) for n, e in enumerate(events) if e.get("type") == self.event_type]
        if not chosen:
            return events
        read = self.read(chosen, version)
        return [read.get(n, event) for n, event in enumerate(events)]


class _Emulator(Protocol):
    def start(self) -> object: ...

    def stop(self) -> None: ...


@contextmanager
def running(emulator: _Emulator) -> Iterator[None]:
    emulator.start()
    try:
        yield
    finally:
        emulator.stop()


def read_all(source: Source) -> list[Event | Malformed]:
    """Everything ``source`` reads from the start."""
    return [item for page in source.poll(None) for item in page.events]


def placed(items: list[Event | Malformed], place: Callable[[Event | Malformed], int],
           events: Chosen, read: Callable[[Event, Event], Event]) -> dict[int, Event]:
    """Each item read, at the place ``place`` names: ``read(original, item)``,
    or the original made unreadable (the scenario's malformed event) when the
    record no longer maps."""
    originals = dict(events)
    out: dict[int, Event] = {}
    for item in items:
        n = place(item)
        original = originals[n]
        out[n] = {**original, "data": {"unreadable": item.reason}} \
            if isinstance(item, Malformed) else read(original, item)
    return out
