"""Month-end burst: N approved time entries polled from the emulated time
tool, validated, priced and posted in batches to the emulated ERP ledger.
Duplicates and losses are counted by reading the ledger, not the hub."""

from __future__ import annotations

import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from billbridge.connectors.base import RateLimit
from billbridge.connectors.generic.client import LedgerTarget
from billbridge.connectors.generic.emulator import LedgerEmulator, TimeSourceEmulator
from billbridge.connectors.generic.source import GenericTimeSource
from billbridge.engine.hub import Hub, HubSettings
from billbridge.engine.sync import sync
from billbridge.engine.worker import WorkerSettings

PROJECTS = 20
CONFIG: dict[str, Any] = {
    "legal_entities": [{"code": "US01", "name": "Acme", "country": "US",
                        "functional_currency": "USD"}],
    "workers": [{"id": f"w-{i}", "name": f"Worker {i}", "role": "consultant",
                 "legal_entity": "US01", "cost_rate": "80", "currency": "USD"}
                for i in range(50)],
    "rate_cards": [{"id": "rc", "version": 1, "currency": "USD",
                    "effective_from": "2026-01-01", "rates": {"consultant": "150.00"}}],
    "default_rate_card": "rc",
}


def run(entries: int, *, database_url: str | None = None,
        progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bb-bench-"))
    url = database_url or f"sqlite:///{workdir / 'hub.db'}"
    erp, tool = LedgerEmulator(token="t", max_batch=100), TimeSourceEmulator()
    erp.start()
    tool.start()
    try:
        for i in range(entries):
            tool.upsert({"id": f"te-{i}", "worker": f"w-{i % 50}",
                         "project": f"P-{i % PROJECTS}", "task": "dev",
                         "work_date": "2026-03-02", "hours": "1.5", "billable": True,
                         "notes": "", "status": "approved"})
        target = LedgerTarget(erp.url, "t", rate_limit=RateLimit(10_000, 1, burst=10_000))
        hub = Hub(url, {"ledger": target},
                  settings=HubSettings(worker=WorkerSettings(batch_size=500,
                                                             aggregates_per_claim=32)))
        hub.activate_config(CONFIG)
        hub.ingest([{"type": "project.updated", "id": f"p-{p}", "at": "2026-03-01T00:00:00Z",
                     "data": {"code": f"P-{p}", "name": f"P-{p}", "status": "active"}}
                    for p in range(PROJECTS)], source="psa")
        started = time.perf_counter()
        sync(hub.engine, GenericTimeSource(tool.url, per_page=2000), hub.clock)
        polled = time.perf_counter()
        while True:
            moved = hub.step()
            if progress:
                progress(sum(1 for e in erp.effects if e["kind"] == "time_charge.post"),
                         entries)
            if not moved and hub.next_due_ms() is None:
                break
        seconds = time.perf_counter() - started
        charges = [e for e in erp.effects if e["kind"] == "time_charge.post"]
        keys = [e["idempotency_key"] for e in charges]
        posted = {e["data"]["time_entry"] for e in charges}
        calls = len([1 for _ in erp.effects])  # effects, for reference
        return {
            "entries": entries, "seconds": round(seconds, 3),
            "entries_per_s": round(entries / seconds, 1),
            "poll_seconds": round(polled - started, 3),
            "erp_calls": erp.calls, "effects": calls,
            "duplicates": len(keys) - len(set(keys)),
            "lost": entries - len(posted),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
    finally:
        erp.stop()
        tool.stop()
        shutil.rmtree(workdir, ignore_errors=True)
