"""The cross-reference: which id a system gives each canonical record. A
binding, once made, stays; binding it again changes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam

from billbridge.store.bulk import Bulk
from billbridge.store.db import dialect_insert
from billbridge.store.tables import xref

_BIND = Bulk(lambda conn: dialect_insert(conn)(xref).values(
    system=bindparam("system"), kind=bindparam("kind"), external_id=bindparam("external_id"),
    canonical_id=bindparam("canonical_id"), correlation_id=bindparam("correlation_id"),
    created_at=bindparam("created_at")).on_conflict_do_nothing())


def bind_many(conn: Connection, rows: Sequence[dict[str, Any]], *, at: datetime) -> None:
    """Write bindings (system, kind, external_id, canonical_id, correlation_id)
    made at ``at``, with one statement."""
    _BIND.run(conn, rows, created_at=at)
