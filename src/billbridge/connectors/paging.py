"""The guard every paged walk keeps: a page request made a second time means
the listing is not moving (a vendor bug, or a cursor that does not advance),
so the walk stops with ``PAGINATION_LOOP`` instead of looping for ever. And
``chunks``, the slices of a list that a vendor's per-call limit allows;
``cursor_json`` and ``stream_cursor``, what a poller's JSON cursor holds."""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterator, Sequence
from typing import Any, TypeVar

from billbridge.connectors.base import PermanentError

T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """``items`` in order, ``size`` at a time (the last slice may be shorter)."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


class PageGuard:
    """The requests one walk has made. ``once`` notes the next one and refuses
    a repeat; a new walk takes a new guard."""

    def __init__(self, listing: str) -> None:
        self.listing = listing
        self._asked: set[Hashable] = set()

    def once(self, request: Hashable, shown: object = None, *,
             repeat: str = "asked for") -> None:
        """Note ``request``; raise if this walk has made it before. ``shown``
        is how the message names it (the request itself when None); ``repeat``
        says what happened to it twice (a link the vendor gave is "offered")."""
        if request in self._asked:
            raise PermanentError(
                f"{self.listing}: {request if shown is None else shown} was {repeat} twice; "
                "stopping instead of looping", code="PAGINATION_LOOP")
        self._asked.add(request)


def cursor_json(cursor: str | None) -> dict[str, Any] | str:
    """A stored cursor's JSON object, or the text itself when it is not JSON
    (an operator's start instant); an empty object when there is none or it
    holds something else (the poll starts from the beginning)."""
    if not cursor:
        return {}
    try:
        data = json.loads(cursor)
    except ValueError:
        return cursor
    return data if isinstance(data, dict) else {}


def stream_cursor(cursor: str | None, version: int) -> dict[str, dict[str, Any]]:
    """The per-stream states of a cursor kept as JSON ``{"version": N, stream:
    {...}, ...}``; a cursor of another version, or none a poller can read,
    is empty: the poll starts again from the beginning, which reads again but
    loses nothing."""
    data = cursor_json(cursor)
    if isinstance(data, str) or data.get("version") != version:
        return {}
    return {name: value for name, value in data.items()
            if name != "version" and isinstance(value, dict)}
