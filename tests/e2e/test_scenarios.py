"""Every scenario in scenarios/ passes through the real engine, and the
harness really compares (a wrong expectation fails, with the difference)."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from billbridge.cli.app import app
from billbridge.scenarios.runner import ScenarioError, compare, load, run_document, run_file

SCENARIOS = sorted((Path(__file__).parents[2] / "scenarios").glob("*.yaml"))
EXAMPLE = Path(__file__).parents[2] / "scenarios" / "tm-worker-override.yaml"


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
    # The expected item beside the actual one, on the fields the file gives.
    assert any(d.startswith("invoices: differs") and '"total": "2525.01"' in d
               and '| actual {"project": "GLX-001", "currency": "USD", "subtotal": "2525.00", '
                   '"tax": "0.00", "total": "2525.00"}' in d for d in result.differences), \
        result.differences


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


def _run_cli(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["scenario", "run", *map(str, args)],
                                catch_exceptions=False)
    return result.exit_code, result.output


def test_scenario_run_fails_a_file_with_a_misspelt_key_naming_it(tmp_path: Path) -> None:
    misspelt = tmp_path / "misspelt.yaml"
    misspelt.write_text(EXAMPLE.read_text().replace("\nexpect:\n", "\nexpcet:\n"))
    code, output = _run_cli(EXAMPLE, misspelt)
    assert code == 1
    assert "Traceback" not in output
    assert "1 passed, 1 failed" in output  # the good file still ran
    assert "unknown key 'expcet' at the top level; did you mean 'expect'?" in output


@pytest.mark.parametrize(("change", "said"), [
    (("  time_charges:\n", "  time_charge:\n"),
     "unknown section 'time_charge' in `expect`; did you mean 'time_charges'?"),
    (("type: time_entry.upserted", "type: time_entry.upsert"),
     "unknown event type 'time_entry.upsert' in event 2; did you mean 'time_entry.upserted'?"),
    (("    source: hubspot\n", "    sorce: hubspot\n"),
     "unknown key 'sorce' in event 1; did you mean 'source'?"),
    (("    data: {period_end: 2026-03-31}", "    dta: {period_end: 2026-03-31}"),
     "unknown key 'dta' in event 4; did you mean 'data'?"),
], ids=["expect-section", "event-type", "event-key", "event-data"])
def test_unknown_keys_and_event_types_are_named_with_the_nearest_known(
        tmp_path: Path, change: tuple[str, str], said: str) -> None:
    text = EXAMPLE.read_text()
    assert change[0] in text
    path = tmp_path / "typo.yaml"
    path.write_text(text.replace(change[0], change[1], 1))
    with pytest.raises(ScenarioError, match=re.escape(said)):
        load(path)
    # A document built in code is held to the same rules.
    document = yaml.safe_load(path.read_text())
    document["config"] = load(EXAMPLE)["config"]
    with pytest.raises(ScenarioError, match=re.escape(said)):
        run_document(document)


def test_an_empty_expectation_shows_every_item_that_happened() -> None:
    differences = compare("exceptions", [], [{"record": "te-1", "reason": "NO_RATE"},
                                             {"record": "te-2", "reason": "TASK_UNKNOWN"}])
    assert differences[0].startswith("exceptions: expected 0 item(s), got 2")
    assert differences[1:] == [
        'exceptions: extra    expected none | actual {"record": "te-1", "reason": "NO_RATE"}',
        'exceptions: extra    expected none | actual {"record": "te-2", "reason": "TASK_UNKNOWN"}']
    missing = compare("exceptions", [{"reason": "NO_RATE"}], [])
    assert missing[1:] == ['exceptions: missing  expected {"reason": "NO_RATE"} | actual none']


def test_one_bad_file_in_a_batch_is_one_failed_result(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    bad_config = tmp_path / "bad-config.yaml"
    bad_config.write_text(text.replace('rate: "0"}', 'rate: "zero"}'))
    bad_date = tmp_path / "bad-date.yaml"
    bad_date.write_text(text.replace("work_date: 2026-03-02", "work_date: 2026-02-30", 1))
    missing_config = tmp_path / "missing-config.yaml"
    missing_config.write_text("config: nowhere.yaml\nevents:\n" + text.split("\nevents:\n")[1])
    result = CliRunner().invoke(app, ["scenario", "run", "--json", str(EXAMPLE), str(bad_config),
                                      str(bad_date), str(tmp_path / "missing.yaml"),
                                      str(missing_config)], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert [r["passed"] for r in report] == [True, False, False, False, False]
    reasons = [r["differences"] for r in report[1:]]
    assert all(len(r) == 1 for r in reasons), reasons
    assert "config: configuration is not valid: tax_rules.0.rate" in reasons[0][0]
    assert f"{bad_date}: line 40" in reasons[1][0]
    assert "2026-02-30 is not a date: day is out of range for month" in reasons[1][0]
    assert "missing.yaml: cannot read the scenario: No such file or directory" in reasons[2][0]
    assert "nowhere.yaml: cannot read the config: No such file or directory" in reasons[3][0]


def test_a_run_of_several_files_reports_its_progress_file_by_file(tmp_path: Path) -> None:
    from billbridge.scenarios.runner import run_files

    seen: list[tuple[int, int]] = []
    missing = tmp_path / "missing.yaml"
    results = run_files([EXAMPLE, missing], progress=lambda done, total: seen.append(
        (done, total)))
    assert seen == [(1, 2), (2, 2)] and [r.passed for r in results] == [True, False]
