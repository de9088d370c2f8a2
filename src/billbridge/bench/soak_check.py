"""The soak's verdict: the time source's entries, the hub's store and the
ERP's postings reconciled three ways, each read from the system itself.

At the ERP every time entry is followed through its postings and reversals
in the order the ERP applied them: an approved entry must end with exactly
one live posting, of its last version and hours; any other entry with none.
A key applied twice, a second live posting, or a reversal with nothing live
to reverse is a duplicate or an ordering fault, not something to net off."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, select

from billbridge.engine.reconcile import reconcile
from billbridge.store import queries
from billbridge.store.tables import exceptions, outbox, records, target_leases

# Reconciliation findings that mean the hub lost track of something (unbilled
# time is expected: the soak runs no billing).
HUB_FAULTS = ("charge not posted to the ERP", "ERP posting with no source",
              "unpriced approved time")


@dataclass
class Verdict:
    entries: int = 0
    approved: int = 0
    erp_postings: int = 0
    erp_reversals: int = 0
    lost: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)
    hub: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicates or self.stale or self.orphans
                    or self.out_of_order or self.hub)

    def as_json(self) -> dict[str, Any]:
        lists = ("lost", "duplicates", "stale", "orphans", "out_of_order", "hub")
        return {"ok": self.ok, "entries": self.entries, "approved": self.approved,
                "erp_postings": self.erp_postings, "erp_reversals": self.erp_reversals,
                **{name: len(getattr(self, name)) for name in lists},
                "examples": {name: getattr(self, name)[:5] for name in lists
                             if getattr(self, name)}}


def check_erp(source: Sequence[Mapping[str, Any]], effects: Sequence[Mapping[str, Any]],
              verdict: Verdict) -> None:
    """Compare the source's final entries with the ERP's effects (in ERP order)."""
    entries = {str(e["id"]): e for e in source}
    verdict.entries = len(entries)
    verdict.approved = sum(e.get("status") == "approved" for e in entries.values())
    keys = Counter(str(e["idempotency_key"]) for e in effects)
    verdict.duplicates += [f"key {k} applied {n} times" for k, n in keys.items() if n > 1]
    live: dict[str, Mapping[str, Any] | None] = {}
    for effect in sorted(effects, key=lambda e: int(e["seq"])):
        data = effect["data"]
        if effect["kind"] == "time_charge.post":
            verdict.erp_postings += 1
            charge = str(data["id"])
            before = live.get(charge)
            if before is not None:
                verdict.duplicates.append(f"{charge}: posted again while "
                                          f"v{before['source_version']} was live")
            live[charge] = data
        elif effect["kind"] == "time_charge.reverse":
            verdict.erp_reversals += 1
            charge = str(data["charge"])
            if live.get(charge) is None:
                verdict.out_of_order.append(f"{charge}: reversed with nothing live")
            live[charge] = None
    for entry_id, entry in entries.items():
        posting = live.pop(f"tc_{entry_id}", None)
        if entry.get("status") != "approved":
            if posting is not None:
                verdict.orphans.append(f"{entry_id} is {entry.get('status')} in the source "
                                       "but live at the ERP")
        elif posting is None:
            verdict.lost.append(f"{entry_id} v{entry['version']} is not live at the ERP")
        elif int(posting["source_version"]) != int(entry["version"]) or \
                Decimal(str(posting["hours"])) != Decimal(str(entry["hours"])):
            verdict.stale.append(f"{entry_id}: ERP has v{posting['source_version']} "
                                 f"{posting['hours']} h, source v{entry['version']} "
                                 f"{entry['hours']} h")
    verdict.orphans += [f"{charge} is live at the ERP; the source has no such entry"
                        for charge, posting in live.items() if posting is not None]


def check_hub(conn: Connection, source: Sequence[Mapping[str, Any]], verdict: Verdict) -> None:
    """The hub's store: every entry at its last version, no work left waiting,
    no open exception, and its own reconciliation clean."""
    versions = _entry_versions(conn)
    for entry in source:
        held = versions.get(str(entry["id"]))
        if held != int(entry["version"]):
            verdict.hub.append(f"hub holds {entry['id']} at v{held}, source at "
                               f"v{entry['version']}")
    for status, count in queries.inbox_by_status(conn, "pending", "parked").items():
        verdict.hub.append(f"{count} inbox event(s) still {status}")
    waiting = sum(queries.outbox_depth(conn).values())
    if waiting:
        verdict.hub.append(f"{waiting} outbox command(s) still pending")
    for reason, count in conn.execute(select(exceptions.c.reason, func.count())
                                      .where(exceptions.c.status == "open")
                                      .group_by(exceptions.c.reason)):
        verdict.hub.append(f"{count} open exception(s) {reason}")
    now = datetime.now(UTC)
    verdict.hub += [f"{f.kind}: {f.record} ({f.detail})"
                    for f in reconcile(conn, period_end=now.date(), now=now)
                    if f.kind in HUB_FAULTS]


def _entry_versions(conn: Connection) -> dict[str, int]:
    return {r.id: int(json.loads(r.data)["source_version"]) for r in conn.execute(
        select(records.c.id, records.c.data).where(records.c.kind == "time_entry"))}


def queues(conn: Connection, now_ms: int) -> str:
    """What the hub is still working through, for a settling that takes long
    to say what it waits on: inbox events by status, pending commands and how
    many wait out a backoff (and for how long), each target's circuit."""
    events = queries.inbox_by_status(conn, "pending", "parked")
    due = outbox.c.next_attempt_ms
    pending, waiting, soonest, latest = conn.execute(
        select(func.count(), func.count().filter(due > now_ms),
               func.min(due).filter(due > now_ms), func.max(due))
        .where(outbox.c.status == "pending")).one()
    parts = [f"inbox {events.get('pending', 0)} pending, {events.get('parked', 0)} parked",
             f"outbox {pending} pending"]
    if waiting:
        parts[-1] += (f" ({waiting} backing off, next in {(soonest - now_ms) / 1000:.1f} s, "
                      f"last in {(latest - now_ms) / 1000:.1f} s)")
    parts += [f"{r.target} circuit {r.circuit}" + (
        f" for {(r.circuit_until_ms - now_ms) / 1000:.1f} s" if r.circuit == "open" else "")
        for r in conn.execute(select(target_leases.c.target, target_leases.c.circuit,
                                     target_leases.c.circuit_until_ms))]
    return "; ".join(parts)
