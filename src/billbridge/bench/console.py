"""Console render times with a large store: N time entries (each with its
charge, inbox event and ERP posting) and E open exceptions, seeded in bulk;
each page is requested several times and the server time's median reported."""

from __future__ import annotations

import json
import shutil
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from billbridge.emulation.recording import RecordingTarget
from billbridge.engine import tokens
from billbridge.engine.hub import Hub, HubSetup, build_hub
from billbridge.store.tables import charge_facts, exceptions, inbox, outbox, records

PAGES = ["/console/", "/console/exceptions", "/console/lineage?id=te-42",
         "/console/leakage", "/console/executive", "/console/config", "/console/audit"]


def _seed(hub: Hub, entries: int, open_exceptions: int) -> None:
    now = datetime.now(UTC)
    config = {"legal_entities": [{"code": "US01", "name": "Acme", "country": "US",
                                  "functional_currency": "USD"}],
              "workers": [{"id": f"w-{i}", "name": f"W{i}", "role": "consultant",
                           "legal_entity": "US01", "cost_rate": "80", "currency": "USD"}
                          for i in range(50)],
              "rate_cards": [{"id": "rc", "version": 1, "currency": "USD",
                              "effective_from": "2026-01-01",
                              "rates": {"consultant": "150.00"}}],
              "default_rate_card": "rc"}
    hub.activate_config(config)
    with hub.engine.begin() as conn:
        batch = 5000
        for start in range(0, entries, batch):
            ids = range(start, min(entries, start + batch))
            conn.execute(inbox.insert(), [{
                "source": "harvest", "event_id": f"te-{i}:v1", "event_type":
                "time_entry.upserted", "aggregate_key": f"project:P-{i % 200}",
                "correlation_id": f"c{i}", "received_at": now, "status": "done",
                "payload": json.dumps({"data": {"id": f"te-{i}"}}), "duplicates": 0,
                "attempts": 1, "replay": False} for i in ids])
            conn.execute(records.insert(), [{
                "kind": "time_entry", "id": f"te-{i}", "status": "approved",
                "correlation_id": f"c{i}", "version": 1, "updated_at": now,
                "data": json.dumps({"id": f"te-{i}", "worker": f"w-{i % 50}",
                                    "project": f"P-{i % 200}", "task": "dev",
                                    "work_date": "2026-03-02", "hours": "1.50",
                                    "billable": True, "notes": "", "status": "approved",
                                    "source_version": 1})} for i in ids])
            conn.execute(records.insert(), [{
                "kind": "time_charge", "id": f"tc_te-{i}",
                "status": "invoiced" if i % 3 else "posted", "correlation_id": f"c{i}",
                "version": 1, "updated_at": now, "config_version": 1,
                "data": json.dumps({"id": f"tc_te-{i}", "time_entry": f"te-{i}",
                                    "project": f"P-{i % 200}", "worker": f"w-{i % 50}",
                                    "work_date": "2026-03-02", "hours": "1.50",
                                    "rate": "150.00", "amount": "225.00", "currency": "USD",
                                    "billable": True, "config_version": 1,
                                    "source_version": 1})} for i in ids])
            conn.execute(charge_facts.insert(), [{
                "id": f"tc_te-{i}", "time_entry": f"te-{i}", "project": f"P-{i % 200}",
                "worker": f"w-{i % 50}", "work_date": date(2026, 3, 2) - timedelta(days=i % 120),
                "hours_e4": 15_000, "amount_e4": 2_250_000, "currency": "USD",
                "billable": True, "status": "invoiced" if i % 3 else "posted",
                "config_version": 1} for i in ids])
            conn.execute(outbox.insert(), [{
                "target": "ledger", "kind": "time_charge.post", "idempotency_key": f"k{i}",
                "aggregate_key": f"project:P-{i % 200}", "payload": "{}",
                "correlation_id": f"c{i}", "record_kind": "time_charge",
                "record_id": f"tc_te-{i}", "status": "done", "attempts": 1,
                "next_attempt_ms": 0, "external_id": f"L-{i}", "created_at": now,
                "done_at": now + timedelta(seconds=2)} for i in ids])
        conn.execute(exceptions.insert(), [{
            "reason": ["NO_RATE", "BUDGET_EXCEEDED", "PROJECT_NOT_ACTIVE"][i % 3],
            "message": f"held entry {i}", "status": "open", "stage": "inbound",
            "record_kind": "time_entry", "record_id": f"te-{i}", "raw": "{}",
            "correlation_id": f"c{i}", "created_at": now, "updated_at": now}
            for i in range(open_exceptions)])


def run(entries: int = 100_000, open_exceptions: int = 5_000,
        repeats: int = 5) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    from billbridge.web import create_app

    workdir = Path(tempfile.mkdtemp(prefix="bb-console-"))
    try:
        hub = build_hub(HubSetup(store=f"sqlite:///{workdir / 'hub.db'}",
                                 targets=[RecordingTarget("ledger")]))
        started = time.perf_counter()
        _seed(hub, entries, open_exceptions)
        seeded = time.perf_counter() - started
        with hub.engine.begin() as conn:
            _, token = tokens.create(conn, name="bench", role=tokens.Role.ADMIN,
                                     expires_in=timedelta(hours=1), actor="bench",
                                     at=datetime.now(UTC))
        client = TestClient(create_app(hub))
        client.post("/console/login", data={"token": token})
        timings: dict[str, float] = {}
        for path in PAGES:
            samples = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                response = client.get(path)
                samples.append(time.perf_counter() - t0)
                if response.status_code != 200:
                    raise RuntimeError(f"{path} answered {response.status_code}")
            timings[path] = round(statistics.median(samples) * 1000, 1)
        return {"entries": entries, "exceptions": open_exceptions,
                "seed_seconds": round(seeded, 1), "median_ms": timings}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
