"""`billbridge demo` with each vendor the demo knows, one role changed at a
time from the defaults: the story verifies itself against the ERP it ran on,
and a posting read from that ERP's live ledger carries the story's figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from billbridge.demo.vendors import CRMS, DEFAULTS, ERPS, TIME_TOOLS


def lineups() -> list[object]:
    """Each vendor of each role once, the other roles at their defaults."""
    crm, time, erp = DEFAULTS["crm"], DEFAULTS["time"], DEFAULTS["erp"]
    found = [(c, time, erp) for c in CRMS] + [(crm, t, erp) for t in TIME_TOOLS]
    found += [(crm, time, e) for e in ERPS]
    found.append(("dynamics-sales", time, "dynamics-finance"))  # the Microsoft stack, whole
    # Tryton is a real trytond (a dev dependency), marked like the other Tryton tests.
    return [pytest.param(*lineup, id="-".join(lineup),
                         marks=[pytest.mark.tryton] if "tryton" in lineup else [])
            for lineup in dict.fromkeys(found)]


@pytest.mark.parametrize(("crm", "time", "erp"), lineups())
def test_the_story_verifies_itself_against_the_erp_it_ran_on(
        tmp_path: Path, crm: str, time: str, erp: str) -> None:
    workdir = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "billbridge", "demo", "--no-serve", "--port", "0",
         "--workdir", str(workdir), "--crm", crm, "--time", time, "--erp", erp],
        capture_output=True, text=True, timeout=240)
    verified = workdir / "verified.json"
    assert verified.exists(), f"the story stopped early:\n{result.stdout[-3000:]}\n" \
        f"{result.stderr[-3000:]}"
    report = json.loads(verified.read_text())
    assert report["failures"] == [], result.stdout[-4000:]
    assert result.returncode == 0 and "story verified" in result.stdout
    assert "duplicates: 0" in result.stdout

    # Alice's 8 h on Globex at her 175.00 override, as the ERP holds it live.
    entry = {"harvest": "te_harvest_2101", "kantata": "kt-te-2101",
             "tempo": "te_tempo_30101", "replicon": "te_replicon_2101_20260302",
             "csv": "te_csv_TS-2101"}[time]
    (alice,) = [p for p in report["live_postings"] if p["charge"] == f"tc_{entry}"]
    assert (Decimal(alice["hours"]), Decimal(alice["amount"]), alice["currency"]) == (
        Decimal(8), Decimal("1400.00"), "USD")
    assert sum(Decimal(p["amount"]) for p in report["live_postings"]) == Decimal("3525.00")
    invoices = {i["invoice"]: Decimal(i["total"]) for i in report["invoices"]}
    assert invoices == {"inv_GLX-001_2026-03-31": Decimal("2525.00"),
                        "inv_NEW-002_2026-03-31": Decimal("700.00")}


def test_an_unknown_vendor_is_one_line_naming_the_choices(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "billbridge", "demo", "--no-serve", "--port", "0",
         "--workdir", str(tmp_path / "demo"), "--erp", "sap"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert " ".join(result.stdout.split()) == (
        f"--erp sap is not one the demo knows; pick one of {', '.join(ERPS)}")
    assert "Traceback" not in result.stderr


def test_tryton_missing_is_one_line_saying_what_to_install(tmp_path: Path) -> None:
    # A trytond without its modules on the path first: as if Tryton were not installed.
    (tmp_path / "shadow" / "trytond").mkdir(parents=True)
    (tmp_path / "shadow" / "trytond" / "__init__.py").write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "billbridge", "demo", "--no-serve", "--port", "0",
         "--workdir", str(tmp_path / "demo"), "--erp", "tryton"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "shadow")})
    assert result.returncode == 2
    assert " ".join(result.stdout.split()) == (
        "Tryton is not installed here (trytond.modules.project_invoice is missing): "
        "pip install 'billbridge[tryton]'")
    assert "Traceback" not in result.stderr
