"""Vendor contracts: the drift the hub has seen per connection, record type,
field and kind (first and last seen, how often, a sample), for the console
page and the CLI."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from billbridge.engine import drift
from billbridge.services._rows import plain


def drift_seen(conn: Connection, connection: str | None = None) -> list[dict[str, Any]]:
    """Every drift kept, newest last seen first."""
    return plain(drift.rows(conn, connection))
