"""Every scenario in scenarios/ passes through the real engine, and the
harness really compares (a wrong expectation fails, with the difference)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from billbridge.scenarios.runner import compare, load, run_document, run_file

SCENARIOS = sorted((Path(__file__).parents[2] / "scenarios").glob("*.yaml"))


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario_passes(path: Path) -> None:
    result = run_file(path)
    assert result.passed, "\n".join(result.differences)


def test_the_shared_example_is_kept_unchanged() -> None:
    shared = Path(__file__).parents[3] / "shared" / "scenarios" / "tm-worker-override.yaml"
    ours = Path(__file__).parents[2] / "scenarios" / "tm-worker-override.yaml"
    if shared.exists():
        assert ours.read_text() == shared.read_text()
    assert run_file(ours).passed


def test_a_wrong_expectation_fails_and_says_what_differs() -> None:
    scenario = load(Path(__file__).parents[2] / "scenarios" / "tm-worker-override.yaml")
    broken = copy.deepcopy(scenario)
    broken["expect"]["invoices"][0]["total"] = "2525.01"
    result = run_document(broken)
    assert not result.passed
    assert any("invoices: nothing matches" in d and "2525.01" in d for d in result.differences)


def test_lists_match_item_for_item_in_any_order_on_given_fields_only() -> None:
    actual = [{"a": "1", "b": "x"}, {"a": "2", "b": "y"}]
    assert compare("s", [{"a": "2"}, {"a": "1"}], actual) == []
    assert compare("s", [{"a": "1"}], actual) != []  # one too few
    assert compare("s", [], actual) != []  # empty means none at all
    assert compare("s", [{"b": "x"}, {"b": "x"}], actual) != []


def test_cli_json_lists_one_object_per_file_and_fails_on_failure(tmp_path: Path) -> None:
    good = Path(__file__).parents[2] / "scenarios" / "tm-worker-override.yaml"
    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text().replace('total: "2525.00"', 'total: "1.00"'))
    result = subprocess.run([sys.executable, "-m", "billbridge", "scenario", "run", str(good),
                             str(bad), "--json"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert [r["passed"] for r in report] == [True, False]
    assert set(report[0]) == {"file", "name", "passed", "differences", "actual"}
    assert set(report[0]["actual"]) == {"erp_customers", "erp_projects", "erp_postings",
                                        "erp_invoices", "writebacks",
                                        "time_charges", "invoices", "exceptions"}


def test_every_billing_reason_code_is_produced_by_some_scenario() -> None:
    from billbridge.domain.reasons import BILLING_RULE_ORDER, ReasonCode

    domain_codes = {*BILLING_RULE_ORDER, ReasonCode.INVOICED_CHANGE, ReasonCode.NO_TAX_RULE,
                    ReasonCode.NO_FX_RATE}
    produced = {e["reason"] for path in SCENARIOS
                for e in (load(path).get("expect") or {}).get("exceptions") or []}
    assert {c.value for c in domain_codes} <= produced
    assert len(SCENARIOS) >= 40
