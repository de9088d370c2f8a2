"""Charge facts: a time charge's figures as integer columns, written with the
charge, so that dashboards sum in SQL (exactly: ten-thousandths as integers)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, bindparam

from billbridge.store.bulk import Bulk
from billbridge.store.db import dialect_insert
from billbridge.store.tables import charge_facts

SCALE = Decimal(10_000)


def to_e4(value: Any) -> int:
    return int(Decimal(str(value)) * SCALE)


def from_e4(value: int | None) -> Decimal:
    return (Decimal(value or 0) / SCALE).quantize(Decimal("0.01"))


def row(charge: Mapping[str, Any], status: str | None) -> dict[str, Any]:
    return {"id": charge["id"], "time_entry": charge["time_entry"],
            "project": charge["project"], "worker": charge["worker"],
            "work_date": date.fromisoformat(str(charge["work_date"])),
            "hours_e4": to_e4(charge["hours"]), "amount_e4": to_e4(charge["amount"]),
            "currency": charge["currency"], "billable": bool(charge.get("billable")),
            "status": status or charge.get("status") or "posted",
            "config_version": charge.get("config_version")}


_COLUMNS = ("id", "time_entry", "project", "worker", "work_date", "hours_e4", "amount_e4",
            "currency", "billable", "status", "config_version")


def _upsert(conn: Connection) -> Any:
    stmt = dialect_insert(conn)(charge_facts).values(
        **{name: bindparam(name) for name in _COLUMNS})
    return stmt.on_conflict_do_update(
        index_elements=[charge_facts.c.id],
        set_={name: stmt.excluded[name] for name in _COLUMNS if name not in ("id",
                                                                              "time_entry")})


_UPSERT = Bulk(_upsert)


def upsert(conn: Connection, rows: list[dict[str, Any]]) -> None:
    _UPSERT.run(conn, rows)
