"""`make screenshots`: run the demo story without serving, start the hub on
its data, and photograph every console page at 1440x900 with Debian's
chromium (never a downloaded browser); the upload page after a timesheet
export with one bad row is uploaded."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console

from billbridge.connectors.timesheet_files.client import TimesheetFolder
from billbridge.connectors.timesheet_files.source import FileSource
from billbridge.demo.story import LINEAGE_EXAMPLE, run_demo
from billbridge.demo.vendors import GLOBEX, PERIOD_END
from billbridge.emulation.recording import RecordingTarget
from billbridge.engine import config_store, tokens
from billbridge.engine.hub import Hub, HubSetup, build_hub
from billbridge.services import uploads
from billbridge.web import HubServer

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PAGES = {"overview": "/console/", "exceptions": "/console/exceptions",
         "lineage": f"/console/lineage?id={LINEAGE_EXAMPLE}", "leakage": "/console/leakage",
         "executive": "/console/executive", "configuration": "/console/config",
         "audit": "/console/audit", "invoices": "/console/invoices",
         "invoice": f"/console/invoices/inv_{GLOBEX.code}_{PERIOD_END}",
         "contracts": "/console/contracts"}
PREVIEW_TO = "2026-04-30"  # the billing run page, previewing April: Bob's 1 April hours
TIMESHEET = (f"Entry ID,Employee,Project,Task,Date,Hours,Notes\n"
             f"X-101,w-alice,{GLOBEX.code},dev,2026-04-06,6,Data migration dry run\n"
             f"X-102,w-bob,{GLOBEX.code},dev,2026-04-06,7.5,Cut-over checklist\n"
             f"X-103,w-bob,{GLOBEX.code},dev,2026-04-07,7h30,Cut-over rehearsal\n"
             f"X-104,w-carol,{GLOBEX.code},dev,2026-04-07,3,Report layouts\n")
"""The upload page's file: a spreadsheet export whose third row's hours are
not a number, so the outcome shows a refused line."""


def main(out: Path) -> None:
    from playwright.sync_api import sync_playwright

    workdir = Path("var/screenshots")
    run_demo(Console(file=open("/dev/null", "w")), port=0, keep_serving=False,  # noqa: SIM115
             workdir=workdir)
    hub = build_hub(HubSetup(store=f"sqlite:///{workdir / 'hub.db'}",
                             targets=[RecordingTarget("ledger")]))
    with hub.engine.begin() as conn:
        _, token = tokens.create(conn, name="screenshots", role=tokens.Role.ADMIN,
                                 expires_in=timedelta(hours=1), actor="make",
                                 at=datetime.now(UTC),
                                 scope=tokens.Scope.of(["timesheets"], uploads.FILE_EVENTS))
    review = f"/console/config/{_propose_a_designer_rate(hub)}"
    drop = workdir / "timesheets"
    drop.mkdir(exist_ok=True)
    (workdir / "april.csv").write_text(TIMESHEET)
    server = HubServer(hub, port=0, poll_seconds=3600,
                       sources=[FileSource(TimesheetFolder(drop), name="timesheets")])
    server.start()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(f"{server.url}/console/login")
            page.fill("input[name=token]", token)
            page.click("button[type=submit]")
            for name, path in {**PAGES, "configuration-review": review}.items():
                # The review page runs the scenario suite under the proposal: minutes
                # on a busy machine.
                page.goto(server.url + path, timeout=600_000)
                page.screenshot(path=str(out / f"{name}.png"))
                print(f"{out / name}.png")
            page.goto(f"{server.url}/console/billing")
            page.fill("#preview input[name=period_end]", PREVIEW_TO)
            page.click("#preview button")
            page.wait_for_selector("#planned")
            page.screenshot(path=str(out / "billing-runs.png"))
            print(f"{out / 'billing-runs'}.png")
            page.goto(f"{server.url}/console/files")
            page.set_input_files("#file-timesheets", str(workdir / "april.csv"))
            page.click("#upload-timesheets")
            page.wait_for_selector("#outcome")
            page.screenshot(path=str(out / "upload.png"))
            print(f"{out / 'upload'}.png")
            browser.close()
    finally:
        server.stop()


def _propose_a_designer_rate(hub: Hub) -> int:
    """A pending proposal by a second person (the fix for Carol's NO_RATE), so
    the configuration pages show a diff, a preview and the approve button."""
    with hub.engine.begin() as conn:
        active = config_store.document(conn, config_store.active_version(conn))
        cards = [dict(card) for card in active["rate_cards"]]
        cards[0]["rates"] = {**cards[0]["rates"], "designer": "120.00"}
        return config_store.propose(conn, {**active, "rate_cards": cards}, actor="paul",
                                    at=datetime.now(UTC), note="a designer rate for Carol")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"))
