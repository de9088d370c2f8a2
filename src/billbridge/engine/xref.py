"""The cross-reference: which id a system gives each canonical record. A
binding, once made, stays; binding it again changes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam

from billbridge.store.db import dialect_insert
from billbridge.store.tables import xref

_INSERTS: dict[str, Any] = {}


def bind_many(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Write bindings (system, kind, external_id, canonical_id, correlation_id,
    created_at) with one statement, built once per dialect."""
    if not rows:
        return
    name = conn.dialect.name
    if name not in _INSERTS:
        _INSERTS[name] = dialect_insert(conn)(xref).values(
            system=bindparam("system"), kind=bindparam("kind"),
            external_id=bindparam("external_id"), canonical_id=bindparam("canonical_id"),
            correlation_id=bindparam("correlation_id"), created_at=bindparam("created_at"),
        ).on_conflict_do_nothing()
    conn.execute(_INSERTS[name], list(rows))
