"""Instants as billbridge keeps them: aware, in UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload


@overload
def as_utc(at: datetime) -> datetime: ...


@overload
def as_utc(at: None) -> None: ...


def as_utc(at: datetime | None) -> datetime | None:
    """``at`` in UTC, with its zone. A time without a zone is taken as UTC: the
    store keeps UTC, and SQLite hands it back without one."""
    if at is None:
        return None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
