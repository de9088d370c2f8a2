"""Replay of an exception backlog: N approved time entries by workers whose
role the rate card lacks all fail NO_RATE; a configuration change adding the
rate is proposed and approved by a second person (maker-checker); the whole
backlog is replayed and runs through to the emulated ERP. Postings are read
from the ERP emulator, each entry must appear exactly once."""

from __future__ import annotations

import copy
import shutil
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from billbridge.bench.burst import CONFIG, PROJECTS
from billbridge.connectors.base import RateLimit
from billbridge.connectors.generic.client import LedgerTarget
from billbridge.connectors.generic.emulator import LedgerEmulator
from billbridge.engine import config_store, exception_queue
from billbridge.engine.hub import Hub, HubSettings, HubSetup, build_hub
from billbridge.engine.worker import WorkerSettings

ROLE = "analyst"  # the role the first rate card forgot
REASON = "NO_RATE"


def _configs() -> tuple[dict[str, Any], dict[str, Any]]:
    broken = copy.deepcopy(CONFIG)
    broken["workers"] += [{"id": f"a-{i}", "name": f"Analyst {i}", "role": ROLE,
                           "legal_entity": "US01", "cost_rate": "60", "currency": "USD"}
                          for i in range(20)]
    fixed = copy.deepcopy(broken)
    fixed["rate_cards"][0]["rates"][ROLE] = "120.00"
    return broken, fixed


def _open_count(hub: Hub, reason: str | None = None) -> int:
    """Open exceptions in the store (with ``reason``, or all)."""
    with hub.engine.connect() as conn:
        counts = exception_queue.open_by_reason(conn)
    return counts[reason] if reason else sum(counts.values())


def run(exceptions: int, *, database_url: str | None = None) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bb-replay-"))
    url = database_url or f"sqlite:///{workdir / 'hub.db'}"
    erp = LedgerEmulator(token="t", max_batch=100)
    erp.start()
    try:
        target = LedgerTarget(erp.url, "t", rate_limit=RateLimit(10_000, 1, burst=10_000))
        hub = build_hub(HubSetup(store=url, targets=[target], settings=HubSettings(
            worker=WorkerSettings(batch_size=500, aggregates_per_claim=32))))
        broken, fixed = _configs()
        hub.activate_config(broken, note="the rate card has no analyst rate")
        hub.ingest([{"type": "project.updated", "id": f"p-{p}", "at": "2026-03-01T00:00:00Z",
                     "data": {"code": f"P-{p}", "name": f"P-{p}", "status": "active"}}
                    for p in range(PROJECTS)], source="psa")
        entries = [{"type": "time_entry.upserted", "id": f"te-{i}:v1",
                    "at": "2026-03-03T18:00:00Z",
                    "data": {"id": f"te-{i}", "worker": f"a-{i % 20}",
                             "project": f"P-{i % PROJECTS}", "task": "dev",
                             "work_date": "2026-03-02", "hours": "1.5", "billable": True,
                             "status": "approved", "source_version": 1}}
                   for i in range(exceptions)]
        for start in range(0, exceptions, 1000):
            hub.ingest(entries[start:start + 1000], source="timesheets")
        hub.run_until_idle()
        backlog = _open_count(hub, REASON)
        posted_before = sum(e["kind"] == "time_charge.post" for e in erp.effects)

        with hub.engine.begin() as conn:
            version = config_store.propose(conn, fixed, actor="maker",
                                           at=datetime.now(UTC), note=f"add the {ROLE} rate")
        with hub.engine.begin() as conn:
            config_store.approve(conn, version, actor="checker", at=datetime.now(UTC))

        started = time.perf_counter()
        replayed, refused = exception_queue.replay_backlog(
            hub.engine, reason=REASON, actor="operator", now=lambda: datetime.now(UTC))
        marked = time.perf_counter()
        hub.run_until_idle()
        finished = time.perf_counter()

        posts = [e for e in erp.effects if e["kind"] == "time_charge.post"]
        per_entry = Counter(e["data"]["time_entry"] for e in posts)
        seconds = finished - started
        return {
            "exceptions": exceptions, "backlog": backlog, "config_version": version,
            "replayed": replayed, "refused": len(refused),
            "replay_seconds": round(marked - started, 3),
            "process_seconds": round(finished - marked, 3),
            "seconds": round(seconds, 3), "replayed_per_s": round(replayed / seconds, 1),
            "left_open": _open_count(hub),
            "posted_before_fix": posted_before,
            "erp_postings": len(posts),
            "erp_entries_posted": len(per_entry),
            "erp_entries_posted_twice": sum(n > 1 for n in per_entry.values()),
            "missing_at_erp": exceptions - len(per_entry),
            "erp_calls": erp.calls,
        }
    finally:
        erp.stop()
        shutil.rmtree(workdir, ignore_errors=True)
