"""Alerts: the configured thresholds checked against the store; an alert
posts to the webhook once when it starts holding (deduplicated across
workers by a row in `alerts_firing`) and is cleared when it stops."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import structlog
from sqlalchemy import Connection, Engine, delete, func, select

from billbridge.domain.config import AlertRules
from billbridge.domain.times import as_utc
from billbridge.engine.config_store import ConfigCache, active_version
from billbridge.engine.config_store import configs as configs_of
from billbridge.store.db import dialect_insert
from billbridge.store.tables import (
    alerts_firing,
    exceptions,
    inbox,
    outbox,
    target_leases,
    vendor_drift,
)

log = structlog.get_logger("billbridge.alerts")


@dataclass(frozen=True)
class Alert:
    key: str
    message: str



def conditions(conn: Connection, rules: AlertRules, now: datetime) -> list[Alert]:
    """The alerts whose condition holds now."""
    found: list[Alert] = []
    if rules.max_open_exceptions is not None:
        count = conn.execute(select(func.count()).select_from(exceptions)
                             .where(exceptions.c.status == "open")).scalar() or 0
        if count > rules.max_open_exceptions:
            found.append(Alert("open_exceptions", f"{count} open exceptions (threshold "
                                                  f"{rules.max_open_exceptions})"))
    ages = (("oldest_parked", "work parked for", rules.max_parked_minutes,
             inbox.c.received_at, inbox.c.status == "parked"),
            ("queue_age", "the oldest queued command waits", rules.max_queue_age_minutes,
             outbox.c.created_at, outbox.c.status == "pending"))
    for key, text, limit, column, waiting in ages:
        if limit is None:
            continue
        oldest = conn.execute(select(func.min(column)).where(waiting)).scalar()
        age = now - as_utc(oldest) if oldest is not None else None
        if age is not None and age > timedelta(minutes=limit):
            found.append(Alert(key, f"{text} {age} (threshold {limit} min)"))
    if rules.on_circuit_open:
        for row in conn.execute(select(target_leases.c.target)
                                .where(target_leases.c.circuit == "open")):
            found.append(Alert(f"circuit:{row.target}", f"the circuit to {row.target} is open"))
    if rules.on_drift:
        found += _drift(conn, now - timedelta(minutes=rules.drift_window_minutes))
    return found


def _drift(conn: Connection, since: datetime) -> list[Alert]:
    """One alert per connection whose vendor drifted from its contract since ``since``."""
    found = []
    recent = (select(vendor_drift.c.connection, func.count(), func.sum(vendor_drift.c.count))
              .where(vendor_drift.c.last_seen >= since)
              .group_by(vendor_drift.c.connection).order_by(vendor_drift.c.connection))
    for connection, fields, records in conn.execute(recent):
        found.append(Alert(f"drift:{connection}", (
            f"{connection} answers outside its contract: {fields} field change(s) in "
            f"{records} finding(s); see the console's Vendor contracts page")))
    return found


Poster = Callable[[str, dict[str, Any]], None]


def _post(url: str, body: dict[str, Any]) -> None:
    httpx.post(url, json=body, timeout=5.0).raise_for_status()


def evaluate(engine: Engine, now: datetime, *, poster: Poster = _post,
             configs: ConfigCache | None = None) -> list[Alert]:
    """Check the rules; post the alerts that just started; clear those that ended.
    Returns the alerts posted now."""
    with engine.begin() as conn:
        version = active_version(conn)
        if not version:
            return []
        rules = (configs or configs_of(engine)).get(conn, version).alerts
        holding = {a.key: a for a in conditions(conn, rules, now)}
        conn.execute(delete(alerts_firing).where(alerts_firing.c.key.not_in(list(holding))))
        started = []
        for alert in holding.values():
            inserted = conn.execute(dialect_insert(conn)(alerts_firing).values(
                key=alert.key, message=alert.message, since=now)
                .on_conflict_do_nothing().returning(alerts_firing.c.key)).scalar()
            if inserted is not None:
                started.append(alert)
    if rules.webhook_url:
        for alert in started:
            try:
                poster(rules.webhook_url, {"alert": alert.key, "message": alert.message,
                                           "at": now.isoformat()})
            except httpx.HTTPError as exc:
                log.warning("alert not delivered", alert=alert.key, error=str(exc))
    return started
