"""Finance's month-end at the command line, on a SQLite store holding a month
of posted work: `billing preview` shows the invoice and what is held,
`billing run` as finance commits it once (the second time says nothing new
is raised), the ERP emulator holds one invoice, and `invoices list|show`
print it with its currency, down to the time entry and the event that
priced it. Each command runs in-process (typer's CliRunner) but for one real
process, which shows the tables as a terminal prints them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from billbridge.cli.app import app
from billbridge.connectors.generic.emulator.server import LedgerEmulator
from billbridge.engine import tokens
from billbridge.engine.hub import Hub
from billbridge.store.db import make_engine
from billing_story import INVOICE, PERIOD_END, TOTAL, erp_invoices, story_hub


class Store:
    def __init__(self, root: Path, ledger_erp: LedgerEmulator) -> None:
        self.url = f"sqlite:///{root / 'hub.db'}"
        self.hub: Hub = story_hub(make_engine(self.url), ledger_erp)
        now = datetime.now(UTC)
        with self.hub.engine.begin() as conn:
            _, self.finance = tokens.create(conn, name="paul", role=tokens.Role.FINANCE,
                                            expires_in=timedelta(hours=1), actor="t", at=now)
            _, self.operator = tokens.create(conn, name="olga", role=tokens.Role.OPERATOR,
                                             expires_in=timedelta(hours=1), actor="t", at=now)

    def run(self, *args: str, token: str | None = None, code: int = 0) -> Any:
        env = {"BILLBRIDGE_DATABASE_URL": self.url, "BILLBRIDGE_TOKEN": token,
               "BILLBRIDGE_TOKEN_FILE": None, "COLUMNS": "250"}
        result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result


@pytest.fixture
def store(tmp_path: Path, ledger_erp: LedgerEmulator) -> Iterator[Store]:
    store = Store(tmp_path, ledger_erp)
    yield store
    store.hub.engine.dispose()


def test_preview_then_run_once_then_the_invoice_at_the_erp(store: Store,
                                                           ledger_erp: LedgerEmulator) -> None:
    shown = store.run("billing", "preview", "--period-end", PERIOD_END).stdout
    assert INVOICE in shown and f"total: {TOTAL} USD" in shown
    assert "NO_RATE" in shown and "te-3" in shown  # Carol's hours, held
    assert json.loads(store.run("billing", "preview", "--period-end", PERIOD_END,
                                "--json").stdout)["totals"] == {"USD": str(TOTAL)}

    refused = store.run("billing", "run", "--period-end", PERIOD_END, token=store.operator,
                        code=2)
    assert "role operator may not billing.run" in refused.stderr
    done = store.run("billing", "run", "--period-end", PERIOD_END, token=store.finance)
    assert "billing run run-2026-03-31 committed" in done.stdout
    store.hub.run_until_idle()  # the hub's worker raises the invoice and posts it
    again = store.run("billing", "run", "--period-end", PERIOD_END, token=store.finance)
    assert "committed already" in again.stdout and "nothing new is raised" in again.stdout
    store.hub.run_until_idle()
    assert [e["data"]["id"] for e in erp_invoices(ledger_erp)] == [INVOICE]

    [run] = json.loads(store.run("billing", "runs", "--json").stdout)
    assert (run["requested_by"], run["invoices"], run["totals"]) == \
        ("paul", [INVOICE], {"USD": str(TOTAL)})
    assert f"{TOTAL} USD" in store.run("billing", "runs").stdout


def test_invoices_list_and_show_down_to_the_time_entry(store: Store,
                                                       ledger_erp: LedgerEmulator) -> None:
    store.run("billing", "run", "--period-end", PERIOD_END, token=store.finance)
    store.hub.run_until_idle()
    listed = store.run("invoices", "list", "--status", "posted").stdout
    assert INVOICE in listed and f"total: {TOTAL} USD" in listed
    assert "Globex LLC" in listed
    assert "0 invoice(s)" in store.run("invoices", "list", "--currency", "EUR").stdout
    [held] = erp_invoices(ledger_erp)
    shown = store.run("invoices", "show", INVOICE).stdout
    assert "te-1" in shown and "8.00 h x 175.00" in shown and "1400.00 USD" in shown
    assert "rate card rc-standard v1" in shown and "priced by event harvest/te-1:v1" in shown
    assert "FX 1.10" in shown and "US-SALES 8.25 %" in shown
    assert held["id"] in shown  # the ERP's id, in the status history
    detail = json.loads(store.run("invoices", "show", INVOICE, "--json").stdout)
    assert detail["invoice"]["total"] == str(TOTAL)


def test_a_real_process_prints_the_invoice_table(store: Store) -> None:
    store.run("billing", "run", "--period-end", PERIOD_END, token=store.finance)
    store.hub.run_until_idle()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILLBRIDGE_")}
    result = subprocess.run([sys.executable, "-m", "billbridge", "invoices", "list",
                             "--database-url", store.url], capture_output=True, text=True,
                            timeout=120, env={**env, "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert INVOICE in result.stdout and f"{TOTAL} USD" in result.stdout
