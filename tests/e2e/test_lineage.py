"""Lineage explains an amount: on the demo's store, the tree of an invoice, a
time entry or an ERP id holds its own ancestors and descendants only, with the
amount and currency at each step, in the CLI (text and --json) and drawn in
the console."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from billbridge.cli.app import app
from billbridge.engine import tokens
from billbridge.engine.hub import Hub
from billbridge.store.db import make_engine
from billbridge.web import create_app

GLX_INVOICE, NEW_INVOICE = "inv_GLX-001_2026-03-31", "inv_NEW-002_2026-03-31"


def bb(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "billbridge", *args], capture_output=True,
                          text=True, timeout=180, env={**os.environ, "COLUMNS": "200"})


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("demo")
    ran = bb("demo", "--no-serve", "--port", "0", "--workdir", str(folder))
    assert "story verified" in ran.stdout, ran.stdout[-2000:] + ran.stderr[-2000:]
    return f"sqlite:///{folder / 'hub.db'}"


def lineage(*args: str) -> Any:
    """The command in-process: its output as a terminal 200 columns wide shows it."""
    said = CliRunner().invoke(app, ["lineage", *args], env={"COLUMNS": "200"},
                              catch_exceptions=False)
    assert said.exit_code == 0, said.output
    return said


def tree(url: str, ident: str) -> dict[str, Any]:
    root: dict[str, Any] = json.loads(lineage(ident, "--json", "--database-url", url).stdout)[
        "root"]
    return root


def steps(step: dict[str, Any], way: str) -> Iterator[dict[str, Any]]:
    for nxt in step[way]:
        yield nxt
        yield from steps(nxt, way)


def test_an_invoice_is_explained_by_its_own_charges_never_a_sibling_project_s(
        demo_url: str) -> None:
    root = tree(demo_url, GLX_INVOICE)
    assert (root["kind"], root["amount"], root["currency"]) == ("invoice", "2525.00", "USD")
    up = list(steps(root, "up"))
    charges = {s["id"]: f"{s['amount']} {s['currency']}" for s in up if s["kind"] == "time_charge"}
    assert charges == {"tc_te_harvest_2101": "1400.00 USD", "tc_te_harvest_2102": "1125.00 USD"}
    lines = [s for s in up if s["kind"] == "line"]
    assert sum(float(line["amount"]) for line in lines) == 2525.00
    every = json.dumps(root)
    assert NEW_INVOICE not in every and "NEW-002" not in every and "2104" not in every
    ids = [(s["kind"], s["id"]) for s in [*up, *steps(root, "down")]]
    assert len(ids) == len(set(ids)), "a step is repeated"
    [posting] = [s for s in root["down"] if s["kind"] == "posting"]
    assert (posting["facts"]["external id"], posting["amount"]) == ("L-000009", "2525.00")
    [paid] = posting["down"][:1]
    assert paid["kind"] == "event" and paid["facts"]["invoice status"] == "paid"


def test_a_time_entry_leads_through_its_charge_and_invoice_to_the_payment(
        demo_url: str) -> None:
    root = tree(demo_url, "te_harvest_2101")
    [event] = root["up"]
    assert event["facts"]["type"] == "time_entry.upserted"
    [charge] = root["down"]
    assert (charge["id"], charge["amount"], charge["currency"]) == (
        "tc_te_harvest_2101", "1400.00", "USD")
    assert charge["facts"]["hours × rate"] == "8.00 h × 175.00 USD"
    assert charge["facts"]["rate card"] == "rc-standard v1" and charge["facts"]["config"] == "v1"
    postings = {s["facts"]["external id"]: s["amount"] for s in charge["down"]
                if s["kind"] == "posting"}
    assert postings == {"L-000005": "1400.00"}
    [invoice] = [s for s in charge["down"] if s["kind"] == "invoice"]
    assert (invoice["id"], invoice["amount"], invoice["up"]) == (GLX_INVOICE, "2525.00", [])
    below = list(steps(invoice, "down"))
    assert any(s.get("facts", {}).get("invoice status") == "paid" for s in below)
    assert "tc_te_harvest_2102" not in json.dumps(root)  # a sibling charge of the invoice


def test_the_text_tree_prints_ids_as_they_are_and_no_none(demo_url: str) -> None:
    out = lineage("L-000009", "--database-url", demo_url).stdout
    assert "ERP posting #" in out and "2525.00 USD" in out and "invoice paid" in out
    assert "None" not in out
    confirmed = lineage(f"confirmed:ledger:{_key_of(demo_url, 'L-000009')}",
                        "--database-url", demo_url).stdout
    assert "confirmed:ledger:" in confirmed and "\N{LEDGER}" not in confirmed
    assert "L-000009" in confirmed  # the dispatcher's note leads back to its posting


def _key_of(url: str, erp_id: str) -> str:
    from sqlalchemy import select

    from billbridge.store.tables import outbox
    with make_engine(url).connect() as conn:
        key: str = conn.execute(select(outbox.c.idempotency_key)
                                .where(outbox.c.external_id == erp_id)).scalar_one()
    return key


def test_the_console_draws_the_tree_with_amounts(demo_url: str) -> None:
    hub = Hub(make_engine(demo_url), {})
    with hub.engine.begin() as conn:
        _, token = tokens.create(conn, name="fiona", role=tokens.Role.FINANCE,
                                 expires_in=timedelta(hours=1), actor="test",
                                 at=datetime.now(UTC))
    client = TestClient(create_app(hub))
    client.post("/console/login", data={"token": token})
    page = client.get("/console/lineage", params={"id": GLX_INVOICE}).text
    made_from = page.split('id="made-from"', 1)[1].split('id="asked"', 1)[0]
    assert made_from.count('class="step time_charge"') == 2 and "1400.00 USD" in made_from
    led_to = page.split('id="led-to"', 1)[1]
    assert "L-000009" in led_to and "invoice paid" in led_to
    assert NEW_INVOICE not in page and "<script" not in page
