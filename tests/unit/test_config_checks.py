"""The semantic checks of `config validate` (domain.config_checks), table-driven:
each row changes a clean configuration in one way and names the findings it
must raise, severity and item, and nothing else."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from billbridge.config_files import load_folder
from billbridge.domain.config import load_configuration
from billbridge.domain.config_checks import Finding, findings

ROOT = Path(__file__).parents[2]

CLEAN: dict[str, Any] = {
    "legal_entities": [
        {"code": "US01", "name": "Acme Inc", "country": "US", "functional_currency": "USD"},
        {"code": "GB01", "name": "Acme Ltd", "country": "GB", "functional_currency": "GBP"}],
    "workers": [
        {"id": "w-alice", "name": "Alice", "role": "consultant", "legal_entity": "US01",
         "cost_rate": "80.00", "currency": "USD"},
        {"id": "w-carol", "name": "Carol", "role": "designer", "legal_entity": "US01",
         "cost_rate": "60.00", "currency": "USD"}],
    "rate_cards": [
        {"id": "rc", "version": 1, "currency": "USD", "effective_from": "2026-01-01",
         "effective_to": "2026-06-30", "rates": {"consultant": "150.00", "designer": "110.00"},
         "worker_overrides": {"w-alice": "175.00"}},
        {"id": "rc", "version": 2, "currency": "USD", "effective_from": "2026-07-01",
         "rates": {"consultant": "160.00", "designer": "120.00"}}],
    "tax_rules": [
        {"entity_country": "US", "customer_country": "US", "tax_code": "US-NOTAX", "rate": "0"},
        {"entity_country": "GB", "customer_country": "DE", "customer_has_tax_id": True,
         "tax_code": "GB-RC", "rate": "0"},
        {"entity_country": "GB", "customer_country": "DE", "tax_code": "GB-VAT20",
         "rate": "20"}],
    "default_rate_card": "rc",
}

Change = Callable[[dict[str, Any]], None]


def card(number: int, **fields: Any) -> Change:
    def change(doc: dict[str, Any]) -> None:
        doc["rate_cards"][number - 1].update(fields)
    return change


def add(section: str, item: dict[str, Any]) -> Change:
    return lambda doc: doc[section].append(item)


def both(*changes: Change) -> Change:
    def change(doc: dict[str, Any]) -> None:
        for c in changes:
            c(doc)
    return change


CASES: list[tuple[str, Change, list[tuple[str, str, str]]]] = [
    ("override on a worker who is not there",
     card(1, worker_overrides={"w-alice": "175.00", "w-alcie": "180.00"}),
     [("error", "rate card rc version 1", "'w-alcie'")]),
    ("override on a worker in the second card",
     card(2, worker_overrides={"w-zed": "1.00"}),
     [("error", "rate card rc version 2", "'w-zed'")]),
    ("a role no card rates",
     add("workers", {"id": "w-dan", "name": "Dan", "role": "architect",
                     "legal_entity": "US01", "cost_rate": "90.00", "currency": "USD"}),
     [("warning", "worker w-dan", "'architect'")]),
    ("a role no card rates, the worker overridden: priced",
     both(add("workers", {"id": "w-dan", "name": "Dan", "role": "architect",
                          "legal_entity": "US01", "cost_rate": "90.00", "currency": "USD"}),
          card(2, worker_overrides={"w-dan": "200.00"})),
     []),
    ("a role rated only on another card still has a rate",
     add("rate_cards", {"id": "rc-x", "version": 1, "currency": "USD",
                        "effective_from": "2026-01-01", "rates": {"analyst": "90.00"}}),
     []),
    ("a version that ends before it starts",
     card(1, effective_to="2025-12-31"),
     [("error", "rate card rc version 1", "never in force")]),
    ("two versions in force on the same days",
     card(2, effective_from="2026-06-01"),
     [("warning", "rate card rc version 1", "from 2026-06-01 to 2026-06-30")]),
    ("two versions in force on one day, the boundary",
     card(1, effective_to="2026-07-01"),
     [("warning", "rate card rc version 1", "from 2026-07-01 to 2026-07-01")]),
    ("an open-ended version a newer one overlaps",
     card(1, effective_to=None),
     [("warning", "rate card rc version 1", "from 2026-07-01 on")]),
    ("a version every day of which a newer one takes",
     card(2, effective_from="2025-12-01"),
     [("warning", "rate card rc version 1", "never used")]),
    ("a version covered by two newer ones together",
     both(card(1, effective_to=None), card(2, effective_to="2026-09-30"),
          add("rate_cards", {"id": "rc", "version": 3, "currency": "USD",
                             "effective_from": "2026-10-01", "rates": {"consultant": "1"}}),
          card(2, effective_from="2026-01-01")),
     [("warning", "rate card rc version 1", "never used")]),
    ("versions of different cards never overlap each other",
     add("rate_cards", {"id": "rc-other", "version": 1, "currency": "USD",
                        "effective_from": "2026-01-01", "rates": {"consultant": "1"}}),
     []),
    ("a tax rule for a country no legal entity is in",
     add("tax_rules", {"entity_country": "FR", "customer_country": "FR", "tax_code": "FR20",
                       "rate": "20"}),
     [("warning", "tax rule 4 (FR entity to FR customer)", "no legal entity is in FR")]),
    ("a tax rule that repeats an earlier one",
     add("tax_rules", {"entity_country": "US", "customer_country": "US", "tax_code": "US-X",
                       "rate": "5"}),
     [("warning", "tax rule 4 (US entity to US customer)", "tax rule 1")]),
    ("a tax rule for either customer, both kinds ruled",
     add("tax_rules", {"entity_country": "GB", "customer_country": "DE",
                       "customer_has_tax_id": False, "tax_code": "GB-VAT", "rate": "20"}),
     [("warning", "tax rule 3 (GB entity to DE customer)", "with and without a tax id")]),
]


@pytest.mark.parametrize(("change", "expected"), [(c, e) for _, c, e in CASES],
                         ids=[name for name, _, _ in CASES])
def test_each_check_names_the_item(change: Change,
                                   expected: list[tuple[str, str, str]]) -> None:
    document = copy.deepcopy(CLEAN)
    change(document)
    found = findings(load_configuration(document))
    assert [(f.severity, f.item) for f in found] == [(s, i) for s, i, _ in expected], found
    for finding, (_, _, said) in zip(found, expected, strict=True):
        assert said in finding.message, finding


def test_a_clean_configuration_has_no_findings() -> None:
    assert findings(load_configuration(copy.deepcopy(CLEAN))) == []


@pytest.mark.parametrize("document", [None, {}, {"workers": [], "rate_cards": []}],
                         ids=["empty file", "empty mapping", "empty sections"])
def test_an_empty_document_is_an_error(document: Any) -> None:
    [finding] = findings(load_configuration(document))
    assert (finding.severity, finding.item) == ("error", "configuration")
    assert "empty" in finding.message


def test_errors_come_before_warnings_and_each_names_its_severity() -> None:
    document = copy.deepcopy(CLEAN)
    document["workers"].append({"id": "w-dan", "name": "Dan", "role": "architect",
                                "legal_entity": "US01", "cost_rate": "1", "currency": "USD"})
    document["rate_cards"][1]["worker_overrides"] = {"w-nobody": "1.00"}
    found = findings(load_configuration(document))
    assert [f.severity for f in found] == ["error", "warning"]
    assert str(found[0]).startswith("error: rate card rc version 2: ")
    assert found == [Finding("error", "rate card rc version 2", found[0].message),
                     Finding("warning", "worker w-dan", found[1].message)]


def test_the_shipped_configurations_only_warn_of_the_demos_unpriced_designer() -> None:
    for path in (ROOT / "src/billbridge/demo/config.yaml", ROOT / "scenarios/config"):
        _, config = load_folder(path)
        assert [(f.severity, f.item) for f in findings(config)] == [
            ("warning", "worker w-carol")], path
