"""What an ERP connector asks of a command's ``refs`` while it sends, for the
tests that pin ``connectors.base.ERP_REFERENCES``: the dispatcher looks up
only the payload fields a target declares, so a field missing there shows as
a reference the connector asked for and did not find."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pytest

from billbridge.connectors.base import OutboundCommand


@dataclass(frozen=True, slots=True)
class Asked:
    command_kind: str  # the command being sent
    kind: str  # the kind of record it named
    canonical_id: str
    found: bool


class RefsAsked:
    """Every ``OutboundCommand.ref`` call from the moment it is installed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.asked: list[Asked] = []
        lock = threading.Lock()
        original = OutboundCommand.ref

        def ref(command: OutboundCommand, kind: str, canonical_id: Any) -> str | None:
            found = original(command, kind, canonical_id)
            with lock:
                self.asked.append(Asked(command.kind, kind, str(canonical_id),
                                        found is not None))
            return found

        monkeypatch.setattr(OutboundCommand, "ref", ref)

    def mark(self) -> int:
        """Where the calls made from now on start, for ``assert_resolved(since=)``."""
        return len(self.asked)

    def assert_resolved(self, pairs: Iterable[tuple[str, str]], since: int = 0) -> None:
        """Each (command kind, record kind) was asked for, and found every time:
        the records a command depends on are bound before it is sent. ``since``
        (a ``mark()``) looks only at the calls after it: a create that found
        nothing before it, then an update that must find what the create made."""
        for command_kind, kind in pairs:
            asked = [a for a in self.asked[since:]
                     if (a.command_kind, a.kind) == (command_kind, kind)]
            assert asked, f"no {command_kind} asked for its {kind}"
            missed = sorted({a.canonical_id for a in asked if not a.found})
            assert not missed, f"{command_kind} found no {kind} in refs for {missed}"
