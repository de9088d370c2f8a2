"""`billbridge demo`: quote to cash, told as a story on SQLite with emulated
HubSpot (CRM), Harvest (the time tool) and an ERP ledger, then left serving.

Harvest is polled (it has no webhooks) and is the PSA that the ERP's project
ids are written back to; the ERP is the generic ledger (the vendor ERPs
follow in issue 4)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from sqlalchemy import select

from billbridge.api.server import HubServer
from billbridge.cli.render import render_lineage, render_reconciliation
from billbridge.connectors.generic.client import LedgerTarget
from billbridge.connectors.generic.emulator import LedgerEmulator
from billbridge.connectors.harvest.client import HarvestClient
from billbridge.connectors.harvest.emulator import HarvestEmulator
from billbridge.connectors.harvest.mapping import MappingConfig, canonical_id
from billbridge.connectors.harvest.source import HarvestSource
from billbridge.connectors.harvest.target import HarvestTarget
from billbridge.connectors.hubspot.client import HubSpotClient
from billbridge.connectors.hubspot.emulator import HubSpotEmulator
from billbridge.connectors.hubspot.source import HubSpotSource
from billbridge.connectors.hubspot.target import HubSpotTarget
from billbridge.engine import exception_queue, lineage, tokens
from billbridge.engine.hub import Hub, HubSettings
from billbridge.engine.policy import RetryPolicy
from billbridge.engine.reconcile import erp_ledgers, reconcile_three_ways
from billbridge.engine.secrets import new_key
from billbridge.engine.sync import SyncResult, sync
from billbridge.logs import configure_logging
from billbridge.store.files import write_private
from billbridge.store.tables import records

CONFIG = Path(__file__).with_name("config.yaml")
PERIOD_END = "2026-03-31"
HARVEST_ACCOUNT = "123456"

# Harvest users and the consultants they are (Dave is not mapped on purpose:
# his hours show how an entry the mapping cannot read lands in the exception
# queue with its raw payload).
ALICE, BOB, CAROL, DAVE = 3001, 3002, 3003, 3004
WORKERS = {str(ALICE): "w-alice", str(BOB): "w-bob", str(CAROL): "w-carol"}
DEVELOPMENT = 8083366  # the Harvest task, the canonical "dev" task
# The story's Harvest time entries, by Harvest id.
ALICE_GLX, BOB_GLX, CAROL_GLX, ALICE_NEW, BOB_APRIL, DAVE_GLX = range(2101, 2107)
LINEAGE_EXAMPLE = canonical_id("time_entry", ALICE_GLX)  # te_harvest_2101


def wait_settled(hub: Hub, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    quiet_since: float | None = None
    while time.monotonic() < deadline:
        if hub.settled():
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > 0.5:
                return
        else:
            quiet_since = None
        time.sleep(0.05)
    raise TimeoutError("the hub did not settle within a minute")


def company(cid: str, name: str, tax_id: str) -> dict[str, Any]:
    return {"id": cid, "properties": {"name": name, "country": "US", "tax_id": tax_id}}


def deal(did: str, name: str, code: str) -> dict[str, Any]:
    return {"id": did, "properties": {
        "dealname": name, "amount": "50000.00", "closedate": "2026-03-01T09:00:00Z",
        "dealstage": "closedwon", "pipeline": "default", "deal_currency_code": "USD",
        "billing_model": "time_and_materials", "legal_entity": "US01",
        "contract_start": "2026-03-01", "contract_end": "2026-12-31",
        "rate_card": "rc-standard", "project_code": code}}


class Story:
    def __init__(self, console: Console, workdir: Path, port: int) -> None:
        self.console = console
        # Credentials of this run only: no secret is built into the demo.
        ledger_token, crm_token, harvest_token = (secrets.token_urlsafe(24) for _ in range(3))
        self.erp = LedgerEmulator(token=ledger_token)
        self.crm = HubSpotEmulator(token=crm_token)
        self.tool = HarvestEmulator(token=harvest_token, account_id=HARVEST_ACCOUNT)
        for system in (self.erp, self.crm, self.tool):
            system.start()
        crm_client = HubSpotClient(self.crm.url, access_token=crm_token)
        harvest = HarvestClient(f"{self.tool.url}/v2", token=harvest_token,
                                account_id=HARVEST_ACCOUNT,
                                user_agent="billbridge demo (demo@example.com)")
        self.hub = Hub(f"sqlite:///{workdir / 'hub.db'}", {
            "ledger": LedgerTarget(self.erp.url, ledger_token, timeout=1.0),
            "hubspot": HubSpotTarget(crm_client), "harvest": HarvestTarget(harvest)},
            settings=HubSettings(routes={"erp": "ledger", "crm": "hubspot", "psa": "harvest"},
                                 retry=RetryPolicy(base_seconds=0.2, cap_seconds=2.0)))
        self.crm_source = HubSpotSource(crm_client)
        self.tool_source = HarvestSource(harvest, config=MappingConfig(
            workers=WORKERS, tasks={str(DEVELOPMENT): "dev"}))
        self.server = HubServer(self.hub, port=port)
        self.server.start()
        self.step_no = 0

    def say(self, text: str) -> None:
        self.step_no += 1
        self.console.print(f"[bold]{self.step_no}.[/bold] {text}")

    def poll(self) -> SyncResult:
        """One poll of HubSpot and of Harvest; the Harvest result."""
        sync(self.hub.engine, self.crm_source, self.hub.clock)
        result = sync(self.hub.engine, self.tool_source, self.hub.clock)
        wait_settled(self.hub)
        return result

    def log(self, entry_id: int, user: int, code: str, hours: float,
            day: str = "2026-03-02") -> None:
        """A consultant logs time in Harvest against the project with ``code``."""
        project = self.tool.project_by_code(code)
        assert project is not None, f"no Harvest project {code}"
        self.tool.log_time(entry_id=entry_id, user=user, project=project["id"],
                           task=DEVELOPMENT, spent_date=day, hours=hours)

    def harvest_notes(self, code: str) -> str:
        project = self.tool.project_by_code(code)
        return str(project["notes"]) if project else ""

    def stop(self) -> None:
        self.server.stop()
        for system in (self.erp, self.crm, self.tool):
            system.stop()


def seed_harvest(tool: HarvestEmulator) -> None:
    """The firm's Harvest account: its people, the Development task, and
    Initech's project, set up by the delivery team before the deal closed."""
    tool.seed(users=[{"id": ALICE, "name": "Alice Ng"}, {"id": BOB, "name": "Bob Ruiz"},
                     {"id": CAROL, "name": "Carol Diaz"}, {"id": DAVE, "name": "Dave Kim"}],
              clients=[{"id": 5735801, "name": "Initech Inc"}],
              projects=[{"id": 14308201, "name": "Initech data platform", "code": "NEW-002",
                         "client_id": 5735801}],
              tasks=[{"id": DEVELOPMENT, "name": "Development"}])


def demo_key(workdir: Path) -> Path | None:
    """The hub's secret key (it keys the audit chain): the caller's, or one made
    for this demo in its folder (0600) when none is set."""
    if os.environ.get("BILLBRIDGE_SECRET_KEY") or os.environ.get("BILLBRIDGE_SECRET_KEY_FILE"):
        return None
    key_file = workdir / "secret.key"
    write_private(key_file, new_key())
    os.environ["BILLBRIDGE_SECRET_KEY_FILE"] = str(key_file)
    return key_file


def run_demo(console: Console, *, port: int = 8000, keep_serving: bool = True,
             workdir: Path = Path("var/demo")) -> int:
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    configure_logging(stream=(workdir / "hub.log").open("a"))
    key_file = demo_key(workdir)
    story = Story(console, workdir, port)
    hub, crm, tool, erp = story.hub, story.crm, story.tool, story.erp
    with hub.engine.begin() as conn:
        _, admin = tokens.create_first(conn, name="demo-admin", expires_in=timedelta(days=1),
                                       at=datetime.now(UTC))
    console.print(Panel.fit(
        f"hub {story.server.url}  ·  HubSpot {crm.url}\nHarvest {tool.url}/v2  ·  "
        f"ERP {erp.url}\nstore {workdir / 'hub.db'}",
        title="billbridge demo: from won deal to paid invoice"))

    version = hub.activate_config(yaml.safe_load(CONFIG.read_text()), actor="demo")
    story.say(f"Configuration v{version} is active: rate card rc-standard (consultant 150.00, "
              "Alice 175.00; no designer rate); Harvest is the PSA that ERP ids go back to.")
    seed_harvest(tool)
    story.log(ALICE_NEW, ALICE, "NEW-002", 4)
    tool.approve("time_entries", ALICE_NEW)
    story.say("In Harvest, Alice logs 4 h on Initech's project NEW-002 and her manager "
              "approves them, before Initech's deal is won.")
    crm.seed(companies=[company("901", "Globex LLC", "US-12-3456789")],
             deals=[deal("1001", "Globex ERP rollout", "GLX-001")],
             associations=[("1001", "901")])
    erp.faults.script(["lost_ack", "429:0"])
    story.say("Globex's deal is won in HubSpot (the ERP will lose one acknowledgement and "
              "throttle once).")
    story.poll()
    won = crm.get("deals", "1001")["properties"]
    glx = tool.project_by_code("GLX-001") or {}
    story.say(f"GLX-001 is an ERP project ({won.get('erp_project_id')}) for ERP customer "
              f"{won.get('erp_customer_id')}; both ids are on the HubSpot deal, and Harvest "
              f"now has project GLX-001 under {glx.get('client', {}).get('name')} with them "
              "in its notes. Alice's NEW-002 hours wait: that project is not activated yet.")

    story.log(ALICE_GLX, ALICE, "GLX-001", 8)
    story.log(BOB_GLX, BOB, "GLX-001", 7.5)
    story.log(CAROL_GLX, CAROL, "GLX-001", 6)
    story.log(BOB_APRIL, BOB, "GLX-001", 2, day="2026-04-01")
    story.log(DAVE_GLX, DAVE, "GLX-001", 3)
    tool.approve("time_entries", ALICE_GLX, BOB_GLX, CAROL_GLX, BOB_APRIL, DAVE_GLX)
    first = story.poll()
    # Harvest has no webhooks: each poll reads again the last minute before the
    # previous one began, so nothing updated at a poll's edge is missed.
    second = story.poll()
    story.say(f"The week's approved hours flow in from Harvest: Alice 8 h and Bob 7.5 h on "
              f"GLX-001, Carol 6 h (no rate), Bob 2 h on 1 April ({first.accepted} events). "
              f"The next poll overlapped the first and read them again ({second.duplicates} "
              "repeats, dropped by the inbox). Dave's 3 h are kept raw: his Harvest user is "
              "not mapped to a consultant.")

    crm.seed(companies=[company("902", "Initech Inc", "US-98-7654321")],
             deals=[deal("1002", "Initech data platform", "NEW-002")],
             associations=[("1002", "902")])
    story.poll()
    story.say("Initech's deal is won: NEW-002 is activated, Alice's parked 4 h are released, "
              "and the ERP ids are added to the notes of NEW-002 in Harvest.")

    hub.ingest([{"type": "billing.run", "id": f"run-{PERIOD_END}", "at": "2026-04-01T06:00:00Z",
                 "data": {"period_end": PERIOD_END}}], source="billbridge")
    wait_settled(hub)
    story.say(f"Month-end billing run to {PERIOD_END}: one invoice per project.")
    hub.ingest([{"type": "invoice.status_changed", "id": "pay-glx-1",
                 "at": "2026-04-20T12:00:00Z",
                 "data": {"invoice": f"inv_GLX-001_{PERIOD_END}", "status": "paid"}}],
               source="ledger")
    wait_settled(hub)
    paid = crm.get("deals", "1001")["properties"].get("invoice_status")
    story.say(f"The ERP reports the GLX-001 invoice paid; HubSpot's deal now says "
              f"invoice_status={paid}, and the project's notes in Harvest read:")
    console.print(Panel(story.harvest_notes("GLX-001"), title="Harvest project GLX-001: notes",
                        expand=False))

    failures = summarise(console, hub, erp, tool)
    if keep_serving:
        env = (f"BILLBRIDGE_SECRET_KEY_FILE={key_file} " if key_file else "")
        console.print(f"\nThe hub keeps serving on {story.server.url} (Ctrl-C to stop); log in "
                      f"to {story.server.url}/console with the admin token {admin}. Try:\n"
                      f"  curl {story.server.url}/healthz\n"
                      f"  {env}BILLBRIDGE_TOKEN={admin} .venv/bin/billbridge exceptions "
                      f"dismiss ID --reason 'demo data' --database-url "
                      f"sqlite:///{workdir / 'hub.db'}\n"
                      f"  .venv/bin/billbridge reconcile --database-url "
                      f"sqlite:///{workdir / 'hub.db'}\n"
                      f"  .venv/bin/billbridge lineage {LINEAGE_EXAMPLE} --database-url "
                      f"sqlite:///{workdir / 'hub.db'}")
        story.server.wait()
    story.stop()
    return 1 if failures else 0


def summarise(console: Console, hub: Hub, erp: LedgerEmulator,
              tool: HarvestEmulator) -> list[str]:
    with hub.engine.connect() as conn:
        invoices = [json.loads(r.data) for r in conn.execute(
            select(records.c.data).where(records.c.kind == "invoice"))]
        open_exceptions = exception_queue.list_open(conn)
        result = reconcile_three_ways(conn, period_end=datetime.now(UTC).date(),
                                      now=datetime.now(UTC), ledgers=erp_ledgers(hub))
        findings = result.findings
        trail = lineage.trace(conn, LINEAGE_EXAMPLE)
    table = Table("invoice", "project", "lines", "subtotal", "tax", "total", "status",
                  title="invoices")
    for inv in sorted(invoices, key=lambda i: i["id"]):
        table.add_row(inv["id"], inv["project"] or "", str(len(inv["lines"])), inv["subtotal"],
                      inv["tax"], inv["total"] + " " + inv["currency"], inv["status"])
    console.print(table)
    exc_table = Table("id", "reason", "message", title="exception queue (open)")
    for exc in open_exceptions:
        exc_table.add_row(str(exc.id), exc.reason, exc.message[:80])
    console.print(exc_table)
    render_reconciliation(console, result, datetime.now(UTC).date())
    keys = [e["idempotency_key"] for e in erp.effects]
    kinds: dict[str, int] = {}
    for effect in erp.effects:
        kinds[effect["kind"]] = kinds.get(effect["kind"], 0) + 1
    console.print(f"ERP: {kinds}; duplicates: {len(keys) - len(set(keys))}; faults injected: "
                  f"{ {f.value: n for f, n in erp.faults.injected.items()} }")
    render_lineage(console, trail)

    failures = []
    totals = {i["project"]: i["total"] for i in invoices}
    if len(keys) != len(set(keys)):
        failures.append("the ERP holds duplicate postings")
    if totals != {"GLX-001": "2525.00", "NEW-002": "700.00"}:
        failures.append(f"expected invoices GLX-001 2525.00 and NEW-002 700.00, got {totals}")
    if {e.reason for e in open_exceptions} != {"NO_RATE", "MALFORMED_PAYLOAD"}:
        failures.append("expected exactly NO_RATE and MALFORMED_PAYLOAD in the queue")
    unbilled, unpriced = canonical_id("time_entry", BOB_APRIL), canonical_id("time_entry",
                                                                              CAROL_GLX)
    if any(e.error for e in result.erps) or (result.totals() and any(
            t["hub"] != t["erp"] for t in result.totals().values())):
        failures.append(f"the ERP's live postings differ from the hub's charges: "
                        f"{result.totals()} {[e.error for e in result.erps]}")
    found = sorted((f.kind, f.record) for f in findings)
    if found != [("unbilled approved time", unbilled), ("unpriced approved time", unpriced)]:
        failures.append(f"reconciliation should find only {unbilled} unbilled and "
                        f"{unpriced} unpriced: {found}")
    for code in ("GLX-001", "NEW-002"):
        project = tool.project_by_code(code)
        if project is None or "ERP project: L-" not in str(project["notes"]):
            failures.append(f"Harvest project {code} does not show its ERP project id")
    for failure in failures:
        console.print(f"[red]demo check failed: {failure}[/red]")
    if not failures:
        console.print("[bold green]story verified: every approved, priced hour invoiced once; "
                      "the unpriced, unbilled and malformed ones are where finance can see them.")
    return failures
