"""Month-end against NetSuite: how long one hub takes to post N time charges
through the NetSuite emulator, one asynchronous job in flight at a time
against several (the target's dispatch lanes, sent from one process's
parallel rounds). The emulator answers at once; the wait between a job's
submit and its first read is the client's (``first_wait``, 1 s by default, as
real jobs take seconds). The clock runs from the first dispatch, after the
worker has priced every entry, until the outbox is empty.

    .venv/bin/python benchmarks/netsuite_lanes.py --charges 2000 --lanes 1 --lanes 4 --runs 3

Prints one JSON line per run: lanes, seconds, charges per second, the jobs
NetSuite ran and how many time bills it holds (each charge once)."""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from billbridge.bench.burst import CONFIG as BURST_CONFIG
from billbridge.connectors.base import Connection
from billbridge.connectors.netsuite import CONNECTOR
from billbridge.connectors.netsuite.emulator import NetSuiteEmulator
from billbridge.engine.hub import Hub, HubSettings

ACCOUNT = "1234567_SB1"
PROJECTS = [f"P-{i:02}" for i in range(20)]
# The burst's configuration, with the tax rule an invoice-ready ERP needs.
CONFIG: dict[str, Any] = {**BURST_CONFIG, "tax_rules": [
    {"entity_country": "US", "customer_country": "US", "tax_code": "US-EXEMPT", "rate": "0"}]}


def _won(code: str) -> dict[str, Any]:
    return {"type": "opportunity.closed_won", "id": f"won-{code}", "at": "2026-03-01T09:00:00Z",
            "data": {"opportunity": {"id": f"d-{code}", "name": code, "amount": "9000000",
                                     "currency": "USD", "close_date": "2026-03-01"},
                     "customer": {"id": f"co-{code}", "name": f"Customer {code}",
                                  "currency": "USD", "billing_country": "US"},
                     "contract": {"id": f"ct-{code}", "billing_model": "time_and_materials",
                                  "currency": "USD", "legal_entity": "US01",
                                  "start": "2026-03-01", "rate_card": "rc"},
                     "project": {"code": code, "name": f"Project {code}",
                                 "tasks": [{"id": "dev", "name": "Development"}]}}}


def _entry(i: int) -> dict[str, Any]:
    return {"type": "time_entry.upserted", "id": f"te-{i}:v1", "at": "2026-03-31T18:00:00Z",
            "data": {"id": f"te-{i}", "worker": f"w-{i % 10}", "project": PROJECTS[i % 20],
                     "task": "dev", "work_date": f"2026-03-{1 + i % 28:02d}",
                     "hours": str(1 + i % 8), "billable": True, "status": "approved",
                     "source_version": 1}}


def run(charges: int, lanes: int) -> dict[str, Any]:
    emulator = NetSuiteEmulator(account=ACCOUNT)
    emulator.start()
    try:
        with tempfile.TemporaryDirectory() as work:
            connection = Connection(f"netsuite-{lanes}-{time.monotonic_ns()}", "netsuite",
                                    emulator.url, credentials={
                                        "consumer_key": "ck", "consumer_secret": "cs",
                                        "token_id": "tk", "token_secret": "ts"},
                                    options={"account": ACCOUNT, "concurrency": "15",
                                             "dispatch_lanes": str(lanes)})
            target = CONNECTOR.target(connection)  # type: ignore[misc]
            hub = Hub(f"sqlite:///{Path(work) / 'hub.db'}", {"netsuite": target},
                      settings=HubSettings(routes={"erp": "netsuite"}))
            hub.activate_config(CONFIG)
            hub.ingest([_won(p) for p in PROJECTS], source="crm")
            hub.run_until_idle()  # customers and projects exist before month-end
            hub.ingest([_entry(i) for i in range(charges)], source="psa")
            while hub.worker.run_once():
                pass
            started = time.perf_counter()
            while hub.dispatcher.run_once():
                pass
            seconds = time.perf_counter() - started
            if not hub.settled():
                raise RuntimeError("the outbox did not empty")
            bills = len(emulator.records.get("timeBill", {}))
            hub.engine.dispose()
    finally:
        emulator.stop()
    return {"lanes": lanes, "charges": charges, "seconds": round(seconds, 2),
            "charges_per_s": round(charges / seconds, 1), "time_bills": bills}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--charges", type=int, default=2000)
    parser.add_argument("--lanes", type=int, action="append")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results: dict[int, list[float]] = {}
    for _ in range(args.runs):
        for lanes in args.lanes or [1, 4]:  # alternating, so noise falls on both
            figures = run(args.charges, lanes)
            print(json.dumps(figures), flush=True)
            if figures["time_bills"] != args.charges:
                raise SystemExit(f"NetSuite holds {figures['time_bills']} time bills, "
                                 f"not {args.charges}")
            results.setdefault(lanes, []).append(figures["seconds"])
    print(json.dumps({"median_seconds": {k: statistics.median(v)
                                         for k, v in results.items()}}))


if __name__ == "__main__":
    main()
