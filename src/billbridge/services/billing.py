"""Invoices and billing: the hub's live time charges and the invoices it raised."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, select

from billbridge.store.tables import records

LIVE = ("posted", "invoiced")


def live_charges(conn: Connection) -> list[dict[str, Any]]:
    """Every time charge the hub holds live (posted, or invoiced)."""
    return [json.loads(r.data) for r in conn.execute(
        select(records.c.data).where(records.c.kind == "time_charge",
                                     records.c.status.in_(LIVE)))]


def invoices(conn: Connection) -> list[dict[str, Any]]:
    """Every invoice the hub raised."""
    return [json.loads(r.data) for r in conn.execute(
        select(records.c.data).where(records.c.kind == "invoice"))]
