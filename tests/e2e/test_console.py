"""The console end to end through HTTP: log in, find an exception, fix its
rate card through a proposed and approved change, replay it, and see it leave
the queue and appear in the lineage of its ERP posting."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from billbridge.emulation.recording import RecordingTarget
from billbridge.engine import tokens
from billbridge.engine.hub import Hub, HubSettings
from billbridge.scenarios import diff as scenario_diff
from billbridge.store.db import make_engine
from billbridge.web import create_app
from conftest import CONFIG, project_event, time_entry

SCENARIOS = Path(__file__).parents[2] / "scenarios"


def token(hub: Hub, role: tokens.Role, name: str) -> str:
    with hub.engine.begin() as conn:
        return tokens.create(conn, name=name, role=role, expires_in=timedelta(hours=1),
                             actor="test", at=datetime.now(UTC))[1]


def counted_runs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The scenario files a configuration preview runs, one per run (two per
    scenario: under the active and the proposed configuration)."""
    runs: list[str] = []
    real = scenario_diff.run_document

    def counted(document: dict[str, Any], *, file: str) -> Any:
        runs.append(file)
        return real(document, file=file)

    monkeypatch.setattr(scenario_diff, "run_document", counted)
    return runs


def test_fix_a_rate_card_and_replay_from_the_console(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    runs = counted_runs(monkeypatch)
    erp = RecordingTarget("ledger")
    hub = Hub(make_engine("sqlite://"), {"ledger": erp})
    hub.activate_config(CONFIG)
    hub.ingest([project_event(), time_entry("te-9", worker="w-carol", hours="2")],
               source="harvest")
    hub.run_until_idle()
    suite = tmp_path / "scenarios"
    suite.mkdir()
    shutil.copy(SCENARIOS / "tm-role-rate-and-no-rate.yaml", suite)
    shutil.copytree(SCENARIOS / "config", suite / "config")
    app = create_app(hub, scenarios=suite)
    api, console = TestClient(app), TestClient(app)

    assert console.get("/console/exceptions").url.path == "/console/login"
    refused = console.post("/console/login", data={"token": "bb_nope"})
    assert "Not accepted" in refused.text
    console.post("/console/login", data={"token": token(hub, tokens.Role.FINANCE, "fiona")})
    overview = console.get("/console/")
    assert "NO_RATE" in overview.text and "open exceptions" in overview.text

    queue = console.get("/console/exceptions?reason=NO_RATE").text
    [exc_id] = re.findall(r'<td>(\d+)</td><td><span class="reason">NO_RATE', queue)
    assert "w-carol" in queue  # the raw payload is on the page
    # Finance reads the queue but is offered no action it may not take.
    assert "Replay selected" not in queue and 'name="ids"' not in queue
    assert "may read the queue" in queue

    # Finance (fiona) approves a designer rate proposed by someone else.
    card = {**CONFIG["rate_cards"][0], "rates": {**CONFIG["rate_cards"][0]["rates"],
                                                 "designer": "120.00"}}
    proposer = token(hub, tokens.Role.FINANCE, "paul")
    version = api.post("/v1/config/proposals", json={"document": {**CONFIG,
                                                                  "rate_cards": [card]}},
                       headers={"Authorization": f"Bearer {proposer}"}).json()["version"]
    config_page = console.get("/console/config").text
    assert f"Active: version {version - 1}" in config_page
    listed = config_page.split(f'id="proposal-{version}"', 1)[1].split("</section>", 1)[0]
    assert '<span class="add">+    designer: &#39;120.00&#39;</span>' in listed
    # Its review page: the diff, then which postings move, then the approve button.
    review = console.get(f"/console/config/{version}").text
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', review)
    assert csrf is not None
    assert '<span class="add">+    designer: &#39;120.00&#39;</span>' in review
    preview = review.split('class="preview"', 1)[1].split("</table>", 1)[0]
    assert "120.00" in preview and "time charge" in preview
    assert review.index('class="preview"') < review.index(f'id="approve-{version}"')
    # Its maker is offered no approve button, nor is a role that may not approve.
    for name, role in (("paul", None), ("otto", tokens.Role.OPERATOR)):
        other = TestClient(app)
        other.post("/console/login", data={"token": proposer if role is None else
                                           token(hub, role, name)})
        seen = other.get(f"/console/config/{version}").text
        assert 'class="preview"' in seen and f'id="approve-{version}"' not in seen
    assert len(runs) == 2  # three looks at the proposal, one run of its suite
    seen = re.search(r'name="seen" value="([0-9a-f]{64})"', review)
    assert seen is not None  # the approval names the preview it was made from
    approved = console.post(f"/console/config/{version}/approve",
                            data={"csrf": csrf.group(1), "seen": seen.group(1)})
    assert f"version {version} is active" in approved.text
    assert f"Active: version {version}" in approved.text and "No proposal is waiting" in \
        approved.text

    # Fiona may not replay (finance is not an operator); Olga the operator may.
    forbidden = console.post("/console/exceptions/act",
                             data={"action": "replay", "ids": exc_id, "csrf": csrf.group(1)})
    assert forbidden.status_code == 403
    console.post("/console/logout", data={"csrf": csrf.group(1)})
    console.post("/console/login", data={"token": token(hub, tokens.Role.OPERATOR, "olga")})
    page = console.get("/console/exceptions").text
    assert "Replay selected" in page and f'name="ids" value="{exc_id}"' in page
    op_csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert op_csrf is not None
    forged = console.post("/console/exceptions/act",
                          data={"action": "replay", "ids": exc_id, "csrf": "0" * 64})
    assert forged.status_code == 403
    done = console.post("/console/exceptions/act",
                        data={"action": "replay", "ids": exc_id, "csrf": op_csrf.group(1)})
    assert "replay: 1 done" in done.text
    hub.run_until_idle()

    assert "The queue is empty." in console.get("/console/exceptions").text
    [posting] = [e for e in erp.effects if e["kind"] == "time_charge.post"]
    assert posting["payload"]["amount"] == "240.00"  # 2 h x 120.00
    trail = console.get(f"/console/lineage?id={posting['id']}").text
    assert f"→ ledger {posting['id']}" in trail and "te-9" in trail and "240.00 USD" in trail


def test_every_console_page_needs_a_login_and_renders(engine: Engine) -> None:
    hub = Hub(engine, {"ledger": RecordingTarget("ledger")}, settings=HubSettings())
    hub.activate_config(CONFIG)
    client = TestClient(create_app(hub))
    pages = ["/console/", "/console/exceptions", "/console/lineage?id=x", "/console/config",
             "/console/audit", "/console/leakage", "/console/executive"]
    for path in pages:
        assert client.get(path).url.path == "/console/login"
    ada = token(hub, tokens.Role.ADMIN, "ada")
    client.post("/console/login", data={"token": ada})
    for path in pages:
        response = client.get(path)
        assert response.status_code == 200 and "billbridge" in response.text, path
    audit_page = client.get("/console/audit").text
    assert "hash chain intact" in audit_page
    # The audit detail is a readable table of its fields, not a Python dict.
    assert "<dt>role</dt><dd>admin</dd>" in audit_page and "{&#39;" not in audit_page
    hub.activate_config({**CONFIG, "psa_system": "kantata"})
    assert "psa_system" in client.get("/console/config").text  # the changed section
    overview = client.get("/console/").text
    assert "per hour" in overview
    # No latency figure without its sample: none yet, so it says so.
    assert "over 0 posting(s), no postings yet" in overview
    hub.ingest([time_entry("te-x", project="NEW-404")], source="harvest")
    hub.run_until_idle()
    assert 'billbridge_inbox_waiting{status="parked"} 1.0' in client.get(
        "/metrics", headers={"Authorization": f"Bearer {ada}"}).text


def test_the_overview_shows_who_is_sending_to_each_target_now(engine: Engine) -> None:
    hub = Hub(engine, {"ledger": RecordingTarget("ledger")}, settings=HubSettings())
    hub.activate_config(CONFIG)
    hub.ingest([project_event()], source="psa")
    hub.run_until_idle()  # the ledger has a row: its circuit, and its lane given back
    client = TestClient(create_app(hub))
    client.post("/console/login", data={"token": token(hub, tokens.Role.ADMIN, "ada")})
    row = re.compile(r"<td>ledger</td>.*?</tr>", re.S)
    before = row.search(client.get("/console/").text)
    assert before is not None and "closed" in before.group() and "worker-7" not in before.group()
    with engine.begin() as conn:  # another worker is mid-round on lane 0
        conn.execute(text("UPDATE dispatch_lanes SET lease_owner = 'worker-7', "
                          "lease_until_ms = :until"), {"until": hub.clock.ms() + 60_000})
    during = row.search(client.get("/console/").text)
    assert during is not None and "worker-7" in during.group()


def test_executive_figures_come_from_one_dataset() -> None:
    from datetime import date

    from billbridge.scenarios.runner import load
    from billbridge.services.figures import executive

    scenario = load(Path(__file__).parents[2] / "scenarios" / "invoice-paid-flows-back.yaml")
    erp = RecordingTarget("erp")
    hub = Hub(make_engine("sqlite://"), {"erp": erp, "crm": RecordingTarget("crm")},
              settings=HubSettings(routes={"erp": "erp", "crm": "crm"}))
    hub.activate_config(scenario["config"])
    for event in scenario["events"]:
        hub.ingest([event], source=event["source"])
        hub.run_until_idle()
    hub.ingest([time_entry("te-late", worker="w-bob", hours="2", project="GLX-001",
                           work_date="2026-04-02")], source="harvest")
    hub.run_until_idle()
    with hub.engine.connect() as conn:
        figures = executive(conn, date(2026, 5, 1))
    [glx] = figures.projects
    # Won for 50000.00; billed and paid 1400.00 (8 h x 175.00); Bob's 2 h x 150.00 =
    # 300.00 approved in April is WIP; cost 8 x 80.00 + 2 x 70.00 = 780.00.
    assert (glx.contract_value, glx.billed, glx.collected, glx.wip) == (
        Decimal("50000.00"), Decimal("1400.00"), Decimal("1400.00"), Decimal("300.00"))
    assert glx.cost == Decimal("780.00") and glx.backlog == Decimal("48300.00")
    assert glx.margin == Decimal("920.00") and figures.dso_days == "0"

    from billbridge.services.figures import leakage

    hub.ingest([time_entry("te-carol", worker="w-carol", hours="3", project="GLX-001",
                           work_date="2026-04-03")], source="harvest")
    hub.run_until_idle()
    with hub.engine.connect() as conn:
        leak = leakage(conn, date(2026, 5, 1))
    # Bob's April hours are 29 days old on 1 May; Carol's 3 h have no rate.
    assert leak.unbilled == [("GLX-001", "0-30 days", Decimal("2.00"), Decimal("300.00"), "USD")]
    assert leak.unbilled_totals == {"USD": Decimal("300.00")}
    assert leak.held == [("NO_RATE", 1, Decimal("3.00"))]
    assert (leak.parked, leak.stale_charges) == (0, 0)


def test_latency_says_its_sample_and_gives_no_p95_of_a_handful(engine: Engine) -> None:
    hub = Hub(engine, {"ledger": RecordingTarget("ledger")}, settings=HubSettings())
    hub.activate_config(CONFIG)
    hub.ingest([project_event(), *(time_entry(f"te-{i}") for i in range(5))], source="psa")
    hub.run_until_idle()
    client = TestClient(create_app(hub))
    client.post("/console/login", data={"token": token(hub, tokens.Role.ADMIN, "ada")})
    page = client.get("/console/").text
    p95 = page.split('id="latency-p95"', 1)[1].split("</div></div>", 1)[0]
    assert "— (needs 20 postings)" in p95 and "over 5 posting(s)" in p95 and " UTC" in p95


