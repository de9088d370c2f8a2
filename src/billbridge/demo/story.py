"""`billbridge demo`: the first vertical slice, told as a story on SQLite with
an emulated time tool and an emulated ERP-like ledger, then left serving."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from sqlalchemy import func, select

from billbridge.api.server import HubServer
from billbridge.cli.render import render_lineage
from billbridge.connectors.generic.client import LedgerTarget
from billbridge.connectors.generic.emulator import LedgerEmulator, TimeSourceEmulator
from billbridge.connectors.generic.source import GenericTimeSource
from billbridge.connectors.generic.webhooks import GenericWebhooks, sign
from billbridge.engine import exception_queue, lineage
from billbridge.engine.hub import Hub, HubSettings
from billbridge.engine.policy import RetryPolicy
from billbridge.logs import configure_logging
from billbridge.store.tables import inbox, outbox, records

SECRET = "demo-webhook-secret"
CONFIG = Path(__file__).with_name("config.yaml")


def settled(hub: Hub) -> bool:
    with hub.engine.connect() as conn:
        waiting = conn.execute(select(func.count()).select_from(inbox)
                               .where(inbox.c.status == "pending")).scalar()
        sending = conn.execute(select(func.count()).select_from(outbox)
                               .where(outbox.c.status == "pending")).scalar()
    return not waiting and not sending


def wait_settled(hub: Hub, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    quiet_since: float | None = None
    while time.monotonic() < deadline:
        if settled(hub):
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > 1.5:  # a poll cycle with nothing new
                return
        else:
            quiet_since = None
        time.sleep(0.1)
    raise TimeoutError("the hub did not settle within a minute")


def project(code: str, name: str) -> dict[str, Any]:
    return {"type": "project.updated", "id": f"psa-{code}-active", "at": "2026-03-01T09:00:00Z",
            "data": {"code": code, "name": name, "status": "active",
                     "tasks": [{"id": "dev", "name": "Development", "billable": True}]}}


def entry(entry_id: str, worker: str, project_code: str, hours: str) -> dict[str, Any]:
    return {"id": entry_id, "worker": worker, "project": project_code, "task": "dev",
            "work_date": "2026-03-02", "hours": hours, "billable": True,
            "notes": "", "status": "approved"}


def run_demo(console: Console, *, port: int = 8000, keep_serving: bool = True,
             workdir: Path = Path("var/demo")) -> int:
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    configure_logging(stream=(workdir / "hub.log").open("a"))
    ledger = LedgerEmulator(token="ledger-token")
    source = TimeSourceEmulator()
    ledger.start()
    source.start()
    hub = Hub(f"sqlite:///{workdir / 'hub.db'}",
              {"ledger": LedgerTarget(ledger.url, "ledger-token", timeout=1.0)},
              settings=HubSettings(retry=RetryPolicy(base_seconds=0.2, cap_seconds=2.0)))
    server = HubServer(hub, port=port, sources=[GenericTimeSource(source.url)],
                       webhooks={"generic": GenericWebhooks(SECRET)}, poll_seconds=1.0)
    server.start()
    console.print(Panel.fit(
        f"hub {server.url}  ·  time tool {source.url}  ·  ERP ledger {ledger.url}\n"
        f"store {workdir / 'hub.db'}", title="billbridge demo: approved time to ERP postings"))

    version = hub.activate_config(yaml.safe_load(CONFIG.read_text()), actor="demo")
    console.print(f"1. configuration v{version} active: rate card rc-standard "
                  "(consultant 150.00, Alice's override 175.00; no designer rate)")
    hub.ingest([project("GLX-001", "Globex ERP rollout")], source="psa")
    console.print("2. the PSA activates project GLX-001")

    ledger.faults.script(["lost_ack", "429:0", "5xx"])
    console.print("3. the ERP will lose the acknowledgement of its first write, then answer "
                  "429 and 503")
    for item in (entry("te-1", "w-alice", "GLX-001", "8"),
                 entry("te-2", "w-bob", "GLX-001", "7.5"),
                 entry("te-3", "w-carol", "GLX-001", "6"),
                 entry("te-4", "w-alice", "NEW-002", "4")):
        source.upsert(item)
    console.print("4. consultants' approved hours land in the time tool: Alice 8h and Bob 7.5h "
                  "on GLX-001, Carol 6h (designer: no rate), Alice 4h on NEW-002 (not active)")
    statuses = source.send_webhook(f"{server.url}/v1/webhooks/generic", ["te-1"],
                                   secret=SECRET, duplicate=True)
    console.print(f"5. the time tool also pushes te-1 by webhook, twice: HTTP {statuses}")
    body = b'{"event_id": "broken-1", "time_entry": {"id": "te-9", "hours": "lots"}}'
    stamp = str(int(time.time()))
    bad = httpx.post(f"{server.url}/v1/webhooks/generic", content=body,
                     headers={"X-Generic-Timestamp": stamp,
                              "X-Generic-Signature": sign(SECRET, stamp, body)})
    forged = httpx.post(f"{server.url}/v1/webhooks/generic", content=body,
                        headers={"X-Generic-Timestamp": stamp,
                                 "X-Generic-Signature": "sha256=" + "0" * 64})
    console.print(f"6. a malformed entry arrives signed (HTTP {bad.status_code}, kept raw), "
                  f"and a forged one is refused (HTTP {forged.status_code})")
    wait_settled(hub)
    hub.ingest([project("NEW-002", "Initech data platform")], source="psa")
    console.print("7. the PSA activates NEW-002: its parked hours are released")
    wait_settled(hub)

    failures = summarise(console, hub, ledger)
    if keep_serving:
        console.print(f"\nThe hub keeps serving on {server.url} (Ctrl-C to stop). Try:\n"
                      f"  curl {server.url}/metrics | grep billbridge_\n"
                      f"  tail {workdir / 'hub.log'}\n"
                      f"  .venv/bin/billbridge lineage te-1 --database-url "
                      f"sqlite:///{workdir / 'hub.db'}")
        server.wait()
    else:
        server.stop()
    ledger.stop()
    source.stop()
    return 1 if failures else 0


def summarise(console: Console, hub: Hub, ledger: LedgerEmulator) -> list[str]:
    with hub.engine.connect() as conn:
        events = conn.execute(select(func.count(), func.coalesce(func.sum(inbox.c.duplicates), 0))
                              .select_from(inbox)).one()
        charges = list(conn.execute(select(records.c.data)
                                    .where(records.c.kind == "time_charge")))
        open_exceptions = exception_queue.list_open(conn)
        trail = lineage.trace(conn, "te-1")
    import json

    table = Table("time entry", "worker", "hours", "rate", "amount", "ERP posting",
                  title="charges posted to the ERP")
    effects = {e["data"].get("id"): e for e in ledger.effects if e["kind"] == "time_charge.post"}
    for row in sorted((json.loads(c.data) for c in charges), key=lambda d: d["id"]):
        effect = effects.get(row["id"])
        table.add_row(row["time_entry"], row["worker"], row["hours"], row["rate"],
                      f"{row['amount']} {row['currency']}", effect["id"] if effect else "—")
    console.print(table)
    exc_table = Table("id", "reason", "message", title="exception queue (open)")
    for exc in open_exceptions:
        exc_table.add_row(str(exc.id), exc.reason, exc.message[:80])
    console.print(exc_table)

    keys = [e["idempotency_key"] for e in ledger.effects]
    duplicates = len(keys) - len(set(keys))
    console.print(f"inbox: {events[0]} events stored, {events[1]} repeat deliveries dropped; "
                  f"ERP: {len(ledger.effects)} effects applied, {duplicates} duplicates; "
                  f"faults injected: "
                  f"{ {fault.value: n for fault, n in ledger.faults.injected.items()} }")
    render_lineage(console, trail)
    failures = []
    if duplicates:
        failures.append("the ERP holds duplicate postings")
    if len(effects) != 3:
        failures.append(f"expected 3 labour postings, found {len(effects)}")
    if {e.reason for e in open_exceptions} != {"NO_RATE", "MALFORMED_PAYLOAD"}:
        failures.append("expected exactly NO_RATE and MALFORMED_PAYLOAD in the queue")
    for failure in failures:
        console.print(f"[red]demo check failed: {failure}[/red]")
    if not failures:
        console.print("[bold green]slice verified: every approved, priced hour posted exactly "
                      "once; the unpriced and malformed ones wait in the exception queue.")
    return failures
