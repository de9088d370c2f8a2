"""`billbridge demo`: quote to cash, told as a story on SQLite with an emulated
CRM, time tool and ERP (HubSpot, Harvest and the generic ledger unless told
otherwise; `vendors.py` lists the others), then left serving.

The story is the same for every vendor: two deals won, a week of approved
time (some of it unpriced, some unmapped, some past the period), a month-end
billing run and a payment. It verifies itself against what the ERP holds: its
live labour postings, read through the connector, and its invoices."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from sqlalchemy import select

from billbridge.cli.render import render_lineage, render_reconciliation
from billbridge.connectors.base import LedgerReader, LivePosting, Source, Target
from billbridge.connectors.registry import connector
from billbridge.demo.vendors import (
    ALICE,
    BOB,
    CAROL,
    CRMS,
    DAVE,
    DEFAULTS,
    ERPS,
    GLOBEX,
    INITECH,
    PERIOD_END,
    TIME_TOOLS,
    WORKDIR,
    Crm,
    Entry,
    Erp,
    TimeTool,
    VendorUnavailable,
)
from billbridge.domain.billing import charge_id
from billbridge.engine import exception_queue, tokens
from billbridge.engine.hub import Hub, HubSettings, HubSetup, build_hub
from billbridge.engine.policy import RetryPolicy
from billbridge.engine.reconcile import UNMAPPED_KIND, erp_ledgers, reconcile_three_ways
from billbridge.engine.secrets import new_key
from billbridge.engine.sync import SyncResult, sync
from billbridge.logs import configure_logging
from billbridge.services import billing_runs, lineage
from billbridge.store.files import write_private
from billbridge.store.tables import records
from billbridge.web import HubServer

CONFIG = Path(__file__).with_name("config.yaml")
FINANCE_LEAD = "Fiona"  # who commits the month-end billing run

# The story's time entries.
ALICE_GLX = Entry(1, ALICE, GLOBEX.code, Decimal(8))
BOB_GLX = Entry(2, BOB, GLOBEX.code, Decimal("7.5"))
CAROL_GLX = Entry(3, CAROL, GLOBEX.code, Decimal(6))  # a designer: no rate on the card
ALICE_NEW = Entry(4, ALICE, INITECH.code, Decimal(4))  # before Initech's deal is won
BOB_APRIL = Entry(5, BOB, GLOBEX.code, Decimal(2), day="2026-04-01")  # after the period
DAVE_GLX = Entry(6, DAVE, GLOBEX.code, Decimal(3))
# What the ERP must hold live at the end, by entry, and the invoices, by project.
POSTED = {ALICE_GLX: Decimal("1400.00"), BOB_GLX: Decimal("1125.00"),
          BOB_APRIL: Decimal("300.00"), ALICE_NEW: Decimal("700.00")}
INVOICED = {GLOBEX.code: Decimal("2525.00"), INITECH.code: Decimal("700.00")}
LINEAGE_EXAMPLE = "te_harvest_2101"  # Alice's Globex hours, with the default time tool


@dataclass(frozen=True, slots=True)
class Lineup:
    """Which vendor plays each role."""

    crm: str = DEFAULTS["crm"]
    time: str = DEFAULTS["time"]
    erp: str = DEFAULTS["erp"]

    def check(self) -> str | None:
        """What is wrong with the choice, in one line; None when nothing is."""
        for role, choice, known in (("--crm", self.crm, CRMS), ("--time", self.time, TIME_TOOLS),
                                    ("--erp", self.erp, ERPS)):
            if choice not in known:
                return f"{role} {choice} is not one the demo knows; pick one of {', '.join(known)}"
        return None


def wait_settled(hub: Hub, timeout: float = 120.0) -> None:
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
    raise TimeoutError(f"the hub did not settle within {timeout:.0f} s")


class Story:
    def __init__(self, console: Console, workdir: Path, port: int, lineup: Lineup) -> None:
        self.console = console
        self.started: list[Crm | TimeTool | Erp] = []
        try:
            self.erp: Erp = self._start(ERPS[lineup.erp])
            self.crm: Crm = self._start(CRMS[lineup.crm])
            self.tool: TimeTool = self._start(TIME_TOOLS[lineup.time])
        except BaseException:
            self.stop_systems()
            raise
        targets: dict[str, Target] = {}
        self.sources: dict[str, Source] = {}
        for system in (self.erp, self.crm, self.tool):
            connection = system.connection()
            spec = connector(connection.vendor)
            if spec.target is not None:
                targets[system.name] = spec.target(connection)
            if spec.source is not None and getattr(system, "polled", True):
                self.sources[system.name] = spec.source(connection)
        self.erp_target = targets[self.erp.name]
        self.hub = build_hub(HubSetup(
            store=f"sqlite:///{workdir / 'hub.db'}", targets=list(targets.values()),
            routes={"erp": self.erp.name, "crm": self.crm.name, "psa": self.tool.name},
            settings=HubSettings(retry=RetryPolicy(base_seconds=0.2, cap_seconds=2.0))))
        self.server = HubServer(self.hub, port=port)
        self.server.start()
        self.step_no = 0
        self.admin = ""

    def _start(self, make: Any) -> Any:
        system = make()
        self.started.append(system)
        return system

    def say(self, text: str) -> None:
        self.step_no += 1
        self.console.print(f"[bold]{self.step_no}.[/bold] {text}")

    def poll(self, *, erp: bool = False) -> SyncResult:
        """One poll of the CRM and of the time tool (and of the ERP's invoice
        feed when ``erp``, where it has one); the time tool's result."""
        sync(self.hub.engine, self.sources[self.crm.name], self.hub.clock)
        result = sync(self.hub.engine, self.sources[self.tool.name], self.hub.clock)
        wait_settled(self.hub)
        if erp and self.erp.name in self.sources:
            sync(self.hub.engine, self.sources[self.erp.name], self.hub.clock)
            wait_settled(self.hub)
        return result

    def live_postings(self) -> list[LivePosting]:
        reader: LedgerReader = self.erp_target  # type: ignore[assignment]
        return reader.live_postings()

    def stop_systems(self) -> None:
        for system in reversed(self.started):
            system.stop()

    def stop(self) -> None:
        self.server.stop()
        self.stop_systems()


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
             workdir: Path = Path("var/demo"), lineup: Lineup | None = None) -> int:
    lineup = lineup or Lineup()
    if problem := lineup.check():
        console.print(f"[red]{problem}[/red]")
        return 2
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    os.environ[WORKDIR] = str(workdir.resolve())
    configure_logging(stream=(workdir / "hub.log").open("a"))
    key_file = demo_key(workdir)
    try:
        story = Story(console, workdir, port, lineup)
    except VendorUnavailable as exc:  # what to install, as typed: no markup in it
        console.print(f"[red]{escape(str(exc))}[/red]")
        return 2
    try:
        failures = tell(story, workdir)
        if keep_serving:
            serve_hints(story, workdir, key_file)
            story.server.wait()
    finally:
        story.stop()
    return 1 if failures else 0


def tell(story: Story, workdir: Path) -> list[str]:
    hub, crm, tool, erp, console = story.hub, story.crm, story.tool, story.erp, story.console
    with hub.engine.begin() as conn:
        _, story.admin = tokens.create_first(conn, name="demo-admin",
                                             expires_in=timedelta(days=1), at=datetime.now(UTC))
    console.print(Panel.fit(
        f"hub {story.server.url}  ·  {crm.label} {crm.url}\n{tool.label} {tool.url}  ·  "
        f"ERP ({erp.label}) {erp.url}\nstore {workdir / 'hub.db'}",
        title="billbridge demo: from won deal to paid invoice"))
    for note in (crm.note, tool.note, erp.note):
        if note:
            console.print(f"[dim]{note}[/dim]")

    config = yaml.safe_load(CONFIG.read_text())
    writes_back = getattr(tool, "writes_back", True)
    version = hub.activate_config(
        {**config, "psa_system": tool.name if writes_back else None}, actor="demo")
    story.say(f"Configuration v{version} is active: rate card rc-standard (consultant 150.00, "
              f"Alice 175.00; no designer rate); "
              + (f"{tool.label} is the PSA that ERP ids go back to." if writes_back else
                 f"{tool.label} take no write-back."))
    tool.set_up()
    tool.log([ALICE_NEW])
    story.say(f"In {tool.label}, Alice logs 4 h on Initech's project {INITECH.code} and her "
              "manager approves them, before Initech's deal is won.")
    crm.win(GLOBEX)
    erp.faults.script(list(erp.fault_script))
    story.say(f"Globex's deal is won in {crm.label} (the ERP will lose one acknowledgement "
              "and throttle once).")
    story.poll()
    won = crm.deal(GLOBEX)
    where = f"the {crm.label} deal and on the {tool.label} project" if writes_back \
        else f"the {crm.label} deal"
    story.say(f"{GLOBEX.code} is an ERP project ({won.erp_project_id}) for ERP customer "
              f"{won.erp_customer_id}; both ids are on {where}. Alice's {INITECH.code} hours "
              "wait: that project is not activated yet.")

    tool.log([ALICE_GLX, BOB_GLX, CAROL_GLX, BOB_APRIL, DAVE_GLX])
    first = story.poll()
    second = story.poll()
    story.say(f"The week's approved hours flow in from {tool.label}: Alice 8 h and Bob 7.5 h "
              f"on {GLOBEX.code}, Carol 6 h (no rate), Bob 2 h on 1 April ({first.accepted} "
              f"events). The next poll read again what overlapped ({second.duplicates} "
              "repeats, dropped by the inbox). Dave's 3 h are kept raw: his user is not "
              "mapped to a consultant.")

    crm.win(INITECH)
    story.poll()
    story.say(f"Initech's deal is won: {INITECH.code} is activated, Alice's parked 4 h are "
              "released" + (f", and the ERP ids are added to {INITECH.code} in {tool.label}."
                            if writes_back else "."))

    billing_runs.commit(hub.engine, date.fromisoformat(PERIOD_END), actor=FINANCE_LEAD,
                        at=datetime(2026, 4, 1, 6, tzinfo=UTC))
    wait_settled(hub)
    story.say(f"{FINANCE_LEAD} in finance runs month-end to {PERIOD_END}: one invoice per "
              "project.")
    glx_invoice = next((i for i in erp.invoices() if GLOBEX.code in i.invoice), None)
    if glx_invoice is not None:
        events = erp.pay(glx_invoice)
        if events:
            hub.ingest(events, source=erp.name)
        story.poll(erp=True)
    paid = crm.deal(GLOBEX).invoice_status
    story.say(f"The customer pays the {GLOBEX.code} invoice in the ERP; the {crm.label} deal "
              f"now says invoice_status={paid}, and the project in {tool.label} shows:")
    console.print(Panel(tool.project_view(GLOBEX.code),
                        title=f"{tool.label} project {GLOBEX.code}", expand=False))
    return summarise(story, workdir)


def serve_hints(story: Story, workdir: Path, key_file: Path | None) -> None:
    url, db = story.server.url, f"sqlite:///{workdir / 'hub.db'}"
    env = (f"BILLBRIDGE_SECRET_KEY_FILE={key_file} " if key_file else "")
    story.console.print(
        f"\nThe hub keeps serving on {url} (Ctrl-C to stop); log in to {url}/console with "
        f"the admin token {story.admin}. Try:\n"
        f"  curl {url}/healthz\n"
        f"  {env}BILLBRIDGE_TOKEN={story.admin} .venv/bin/billbridge exceptions dismiss ID "
        f"--note 'demo data' --database-url {db}\n"
        f"  .venv/bin/billbridge reconcile --database-url {db}\n"
        f"  .venv/bin/billbridge lineage {story.tool.entry_id(ALICE_GLX)} --database-url {db}")


def _findings(tool: TimeTool) -> list[tuple[str, str]]:
    """What reconcile must find after the story: Dave's unmapped hours (from a
    time tool whose mapping reports them), Bob's unbilled April hours and
    Carol's unpriced ones."""
    dave = [(UNMAPPED_KIND, tool.entry_id(DAVE_GLX))] \
        if getattr(tool, "reports_unmapped", False) else []
    return [*dave, ("unbilled approved time", tool.entry_id(BOB_APRIL)),
            ("unpriced approved time", tool.entry_id(CAROL_GLX))]


def summarise(story: Story, workdir: Path) -> list[str]:
    hub, console, tool, crm = story.hub, story.console, story.tool, story.crm
    with hub.engine.connect() as conn:
        invoices = [json.loads(r.data) for r in conn.execute(
            select(records.c.data).where(records.c.kind == "invoice"))]
        open_exceptions = exception_queue.list_open(conn)
        result = reconcile_three_ways(conn, period_end=datetime.now(UTC).date(),
                                      now=datetime.now(UTC), ledgers=erp_ledgers(hub))
        trail = lineage.trace(conn, tool.entry_id(ALICE_GLX))
    table = Table("invoice", "project", "lines", "subtotal", "tax", "total", "status",
                  title="invoices (the hub's)")
    for inv in sorted(invoices, key=lambda i: i["id"]):
        table.add_row(inv["id"], inv["project"] or "", str(len(inv["lines"])), inv["subtotal"],
                      inv["tax"], inv["total"] + " " + inv["currency"], inv["status"])
    console.print(table)
    exc_table = Table("id", "reason", "message", title="exception queue (open)")
    for exc in open_exceptions:
        exc_table.add_row(str(exc.id), exc.reason, exc.message[:80])
    console.print(exc_table)
    render_reconciliation(console, result, datetime.now(UTC).date())

    postings, erp_invoices = story.live_postings(), story.erp.invoices()
    held = Table("charge", "ERP id", "hours", "amount", title=f"live postings ({story.erp.label})")
    for p in sorted(postings, key=lambda p: p.charge):
        held.add_row(p.charge, p.external_id, str(p.hours), f"{p.amount} {p.currency}")
    console.print(held)
    twins = (len(postings) - len({p.charge for p in postings})
             + len(erp_invoices) - len({i.invoice for i in erp_invoices}))
    injected = {f.value: n for f, n in story.erp.faults.injected.items()}
    console.print(f"ERP: {len(postings)} live postings, {len(erp_invoices)} invoices; "
                  f"duplicates: {twins}; faults injected: {injected}")
    render_lineage(console, trail)

    failures = []
    if twins:
        failures.append("the ERP holds duplicate postings or invoices")
    live = {p.charge: p.amount for p in postings}
    expected = {charge_id(tool.entry_id(e)): amount for e, amount in POSTED.items()}
    if live != expected:
        failures.append(f"the ERP should hold live {expected}, it holds {live}")
    billed = {code: next((i.total for i in erp_invoices if code in i.invoice), None)
              for code in INVOICED}
    if billed != INVOICED:
        failures.append(f"the ERP's invoices should be {INVOICED}, they are {billed}")
    totals = {i["project"]: Decimal(i["total"]) for i in invoices}
    if totals != INVOICED:
        failures.append(f"the hub's invoices should be {INVOICED}, they are {totals}")
    if {e.reason for e in open_exceptions} != {"NO_RATE", "MALFORMED_PAYLOAD"}:
        failures.append("expected exactly NO_RATE and MALFORMED_PAYLOAD in the queue, got "
                        f"{sorted({e.reason for e in open_exceptions})}")
    if any(e.error for e in result.erps) or (result.totals() and any(
            t["hub"] != t["erp"] for t in result.totals().values())):
        failures.append(f"the ERP's live postings differ from the hub's charges: "
                        f"{result.totals()} {[e.error for e in result.erps]}")
    found, wanted = sorted((f.kind, f.record) for f in result.findings), _findings(tool)
    if found != wanted:
        failures.append(f"reconciliation should find only {wanted}, it finds {found}")
    for deal in (GLOBEX, INITECH) if getattr(tool, "writes_back", True) else ():
        shown = crm.deal(deal)
        if not shown.erp_project_id or shown.erp_project_id not in tool.project_view(deal.code):
            failures.append(f"{tool.label} project {deal.code} does not show ERP project "
                            f"{shown.erp_project_id} (the one on the {crm.label} deal)")
    if crm.deal(GLOBEX).invoice_status != "paid":
        failures.append(f"the {crm.label} deal does not say its invoice is paid")
    (workdir / "verified.json").write_text(json.dumps({
        "failures": failures,
        "live_postings": [{"charge": p.charge, "external_id": p.external_id,
                           "hours": str(p.hours), "amount": str(p.amount),
                           "currency": p.currency} for p in postings],
        "invoices": [{"invoice": i.invoice, "erp_id": i.erp_id, "total": str(i.total),
                      "currency": i.currency} for i in erp_invoices]}, indent=2))
    for failure in failures:
        console.print(f"[red]demo check failed: {failure}[/red]")
    if not failures:
        console.print("[bold green]story verified: every approved, priced hour invoiced once; "
                      "the unpriced, unbilled and malformed ones are where finance can see them.")
    return failures
