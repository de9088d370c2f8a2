"""Typed rows: what the queues' rows carry as code reads them. A row read from
the store (SQLAlchemy's ``Row``) satisfies these protocols as it is, so
nothing is copied; a row about to be written is a frozen dataclass."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


class InboxRow(Protocol):
    """An inbound event as a worker reads it from the ``inbox``."""

    @property
    def id(self) -> int: ...
    @property
    def source(self) -> str: ...
    @property
    def event_id(self) -> str: ...
    @property
    def event_type(self) -> str: ...
    @property
    def aggregate_key(self) -> str: ...
    @property
    def correlation_id(self) -> str: ...
    @property
    def payload(self) -> str | None: ...  # the canonical event as JSON
    @property
    def config_version(self) -> int | None: ...  # pinned by a replay, else None
    @property
    def replay(self) -> bool: ...


class OutboxRow(Protocol):
    """A command as a dispatcher sends it from the ``outbox``."""

    @property
    def id(self) -> int: ...
    @property
    def target(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def idempotency_key(self) -> str: ...
    @property
    def aggregate_key(self) -> str: ...
    @property
    def payload(self) -> str: ...  # canonical JSON
    @property
    def correlation_id(self) -> str: ...
    @property
    def inbox_id(self) -> int | None: ...
    @property
    def record_kind(self) -> str | None: ...
    @property
    def record_id(self) -> str | None: ...
    @property
    def attempts(self) -> int: ...
    @property
    def depends_on(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class NewCommand:
    """A command to write to the outbox: what to send, to which target, on
    behalf of what."""

    target: str
    kind: str
    origin: str
    payload: Mapping[str, Any]
    aggregate_key: str
    correlation_id: str
    inbox_id: int | None = None
    record_kind: str | None = None
    record_id: str | None = None
    depends_on: str | None = None
    lane: int = 0  # see ``engine.outbox.lane_of``
