"""`make screenshots`: run the demo story without serving, start the hub on
its data, and photograph every console page at 1440x900 with Debian's
chromium (never a downloaded browser)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console

from billbridge.demo.story import LINEAGE_EXAMPLE, run_demo
from billbridge.demo.vendors import GLOBEX, PERIOD_END
from billbridge.emulation.recording import RecordingTarget
from billbridge.engine import config_store, tokens
from billbridge.engine.hub import Hub, HubSetup, build_hub
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
                                 at=datetime.now(UTC))
    review = f"/console/config/{_propose_a_designer_rate(hub)}"
    server = HubServer(hub, port=0)
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
