"""Moving a Salesforce connection to another API version is a governed
change: proposed, previewed by reading the suite's deals through the
Salesforce emulator in each version's shape with the real connector, and
approved by a second identity. In the emulator's v63.0 shape an Account's
country comes as BillingCountryCode, so the deals stop mapping and the
preview shows the postings that would no longer be made."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from billbridge.config_files import read_document
from billbridge.connectors.salesforce.client import SalesforceClient
from billbridge.connectors.salesforce.emulator import SalesforceEmulator
from billbridge.connectors.salesforce.source import SalesforceSource
from billbridge.domain.config import load_configuration
from billbridge.engine.hub import Hub
from billbridge.errors import Conflict
from billbridge.scenarios.upgrade.salesforce import opportunity
from billbridge.services import config_versions
from fakes import FakeTarget

SUITE = Path(__file__).parents[2] / "scenarios"
SCENARIOS = [SUITE / "billing-run-period-end.yaml", SUITE / "invoice-per-customer.yaml"]
NOW = datetime(2026, 4, 2, tzinfo=UTC)
# The preview runs the suite on throwaway in-memory stores whatever the hub's store is.
on_sqlite = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)


def firm(version: str) -> dict[str, Any]:
    return {**read_document(SUITE / "config"), "api_versions": {"salesforce": version}}


@pytest.fixture
def hub(engine: Engine) -> Hub:
    hub = Hub(engine, {"ledger": FakeTarget()})
    hub.activate_config(firm("v61.0"))
    return hub


@on_sqlite
def test_the_preview_of_a_newer_api_version_shows_the_postings_that_change(hub: Hub) -> None:
    version = config_versions.propose(hub.engine, firm("v63.0"), actor="paul", at=NOW)
    preview = config_versions.preview(hub.engine, version, SCENARIOS)
    changes = {(c["scenario"][:24], c["kind"], c["subject"]): (c["before"], c["after"])
               for c in preview.changes}
    # What each scenario billed at v61.0 is no longer billed at v63.0.
    gone = {key: before for key, (before, after) in changes.items()
            if key[1] in ("time charge", "invoice") and after == "—"}
    assert sorted(gone.values()) == sorted([
        # billing-run-period-end: March's and April's work and their invoices
        "8.00 h x 175.00 = 1400.00 USD", "2.00 h x 150.00 = 300.00 USD",
        "1400.00 + tax 0.00 = 1400.00 USD, draft",
        "300.00 + tax 0.00 = 300.00 USD, draft",
        # invoice-per-customer: two projects' work (the Salesforce connector reads
        # no invoice grouping, so an invoice per project either way)
        "8.00 h x 175.00 = 1400.00 USD", "4.00 h x 150.00 = 600.00 USD",
        "1400.00 + tax 0.00 = 1400.00 USD, draft",
        "600.00 + tax 0.00 = 600.00 USD, draft"]), changes
    # The deals no longer map and their time finds no project; nothing else changed.
    opened = sorted((key[0], key[2]) for key, (before, after) in changes.items()
                    if key[1] == "exception" and (before, after) == ("—", "open"))
    assert [subject for _, subject in opened] == [
        "None MALFORMED_PAYLOAD", "hv-te-1 PROJECT_UNKNOWN", "hv-te-2 PROJECT_UNKNOWN"] * 2
    assert len(changes) == len(gone) + len(opened)


@on_sqlite
def test_a_version_in_the_same_shape_previews_no_change(hub: Hub) -> None:
    version = config_versions.propose(hub.engine, firm("v62.0"), actor="paul", at=NOW)
    assert config_versions.preview(hub.engine, version, SCENARIOS).changes == []


def test_the_new_version_applies_only_when_a_second_person_approves(hub: Hub) -> None:
    version = config_versions.propose(hub.engine, firm("v63.0"), actor="paul", at=NOW)
    with pytest.raises(Conflict, match="paul proposed version"):
        config_versions.decide(hub.engine, version, "approve", actor="paul", at=NOW)
    source = SalesforceSource(SalesforceClient("https://login.salesforce.com"))
    with hub.engine.connect() as conn:
        source.configure(load_configuration(config_versions.document(
            conn, config_versions.active_version(conn))))
    assert source.client.version == "61.0"

    assert config_versions.decide(hub.engine, version, "approve", actor="fiona",
                                  at=NOW) == "active"
    with hub.engine.connect() as conn:
        source.configure(load_configuration(config_versions.document(
            conn, config_versions.active_version(conn))))
    assert source.client.version == "63.0" and source.contracts.contract.api_version == "v63.0"


def test_a_deals_money_reaches_the_emulator_as_decimal_and_is_answered_with_its_digits() -> None:
    # More digits than a float keeps: a float on the way would show as 1.2345678901234568e+16.
    deal = read_document(SCENARIOS[0])["events"][0]["data"]
    deal = {**deal, "opportunity": {**deal["opportunity"], "amount": "12345678901234567.89"},
            "contract": {**deal["contract"], "budget_cap": "1000.10"}}
    record = opportunity(deal, "001000000000001")
    assert (record["Amount"], record["Budget_Cap__c"]) == (
        Decimal("12345678901234567.89"), Decimal("1000.10"))
    org = SalesforceEmulator()
    org.start()
    try:
        [made] = org.seed({"Opportunity": [record]})["Opportunity"]
        answer = httpx.get(f"{org.url}/services/data/v61.0/query", params={
            "q": f"SELECT Amount, Budget_Cap__c FROM Opportunity WHERE Id = '{made}'"},
            headers={"Authorization": "Bearer session-1"})
    finally:
        org.stop()
    assert '"Amount": 12345678901234567.89' in answer.text
    assert '"Budget_Cap__c": 1000.10' in answer.text
