"""What a flow receives and returns. A flow reads state through ``FlowContext``
(a read-only port the engine implements over the store) and describes every
effect in an ``Outcome``; the engine writes that outcome in one transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from billbridge.domain.config import Configuration
from billbridge.domain.events import CanonicalEvent
from billbridge.domain.reasons import ReasonCode


class FlowContext(Protocol):
    @property
    def config(self) -> Configuration: ...

    @property
    def config_version(self) -> int: ...

    @property
    def replay(self) -> bool:
        """True when an operator replays this event: a version already applied
        is applied again instead of being ignored as stale."""
        ...

    def record(self, kind: str, record_id: str) -> Mapping[str, Any] | None: ...

    def resolve(self, system: str, kind: str, external_id: str) -> str | None:
        """The canonical id bound to a system's external id (the xref)."""
        ...

    def external_id(self, system: str, kind: str, canonical_id: str) -> str | None:
        """A system's id for a canonical record (the xref, the other way)."""
        ...

    def find(self, kind: str, status: str | None = None) -> list[Mapping[str, Any]]:
        """Records of a kind, optionally in one status."""
        ...


@dataclass(frozen=True, slots=True)
class RecordChange:
    kind: str
    id: str
    data: Mapping[str, Any]
    status: str | None = None


@dataclass(frozen=True, slots=True)
class Binding:
    system: str
    kind: str
    external_id: str
    canonical_id: str


@dataclass(frozen=True, slots=True)
class Command:
    """An outbound command to a logical target role ("erp", "crm", "psa")."""

    role: str
    kind: str
    origin: str
    payload: Mapping[str, Any]
    record_kind: str | None = None
    record_id: str | None = None
    depends_on: tuple[str, str] | None = None
    """(record kind, canonical id) that must exist at the same target first,
    e.g. ("project", "GLX-001") before labour is posted to it."""


@dataclass(frozen=True, slots=True)
class Problem:
    reason: ReasonCode
    message: str
    record_kind: str | None = None
    record_id: str | None = None


@dataclass(slots=True)
class Outcome:
    changes: list[RecordChange] = field(default_factory=list)
    bindings: list[Binding] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    park_on: str | None = None  # when set, the event waits on it and nothing else applies
    park_reason: str | None = None
    releases: list[str] = field(default_factory=list)
    resolved: list[tuple[str, str]] = field(default_factory=list)
    """(record kind, id) whose open business exceptions this outcome settles,
    e.g. an entry held for NO_RATE that now priced."""
    note: str | None = None  # e.g. "stale version ignored"


Handler = Callable[[CanonicalEvent, FlowContext], Outcome]
Reads = Callable[[CanonicalEvent], Iterable[tuple[str, str]]]
"""The records (kind, id) a flow will read for an event, as far as the event
alone says: the engine fetches them for a whole batch of events at once. A
hint only; a read it does not name is fetched when the flow asks."""


class FlowRegistry:
    """Flows registered by event type; one handler per type."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._reads: dict[str, Reads] = {}

    def register(self, event_type: str, handler: Handler, reads: Reads | None = None) -> None:
        if event_type in self._handlers:
            raise ValueError(f"a flow for {event_type} is already registered")
        self._handlers[event_type] = handler
        if reads is not None:
            self._reads[event_type] = reads

    def handler_for(self, event_type: str) -> Handler | None:
        return self._handlers.get(event_type)

    def reads_for(self, event: CanonicalEvent) -> Iterable[tuple[str, str]]:
        reads = self._reads.get(event.type)
        return () if reads is None else reads(event)

    @property
    def event_types(self) -> frozenset[str]:
        return frozenset(self._handlers)
