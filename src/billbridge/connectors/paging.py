"""The guard every paged walk keeps: a page request made a second time means
the listing is not moving (a vendor bug, or a cursor that does not advance),
so the walk stops with ``PAGINATION_LOOP`` instead of looping for ever."""

from __future__ import annotations

from collections.abc import Hashable

from billbridge.connectors.base import PermanentError


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
