"""The official ``simple-salesforce`` client, unchanged, against the emulator:
if the emulator's paths, shapes or TLS were wrong, this client would say so.
Then our connector reads back what the official client wrote."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceResourceNotFound

from billbridge.connectors.base import RateLimit
from billbridge.connectors.salesforce.client import SalesforceClient
from billbridge.connectors.salesforce.emulator import SalesforceEmulator
from billbridge.connectors.salesforce.mapping import closed_won_event
from billbridge.connectors.salesforce.source import SalesforceSource
from billbridge.emulation.tls import self_signed


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    return self_signed(Path(tmp_path_factory.mktemp("salesforce-contract-tls")))


@pytest.fixture
def org(cert: tuple[str, str]) -> Iterator[SalesforceEmulator]:
    emulator = SalesforceEmulator(tls=cert, page_size=2, access_token="x")
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture
def sf(org: SalesforceEmulator, cert: tuple[str, str]) -> Iterator[Salesforce]:
    session = requests.Session()
    session.verify = cert[0]
    # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE from the environment override
    # ``session.verify``; without this, a machine that sets them refuses the emulator.
    session.trust_env = False
    yield Salesforce(instance_url=org.url, session_id="x", session=session)
    session.close()


def deal(account_id: str, i: int) -> dict[str, Any]:
    return {"Name": f"Deal {i}", "AccountId": account_id, "StageName": "Closed Won",
            "IsWon": True, "Amount": 5000.0 + i, "CloseDate": "2026-03-01",
            "CurrencyIsoCode": "EUR", "Billing_Model__c": "Fixed Fee",
            "Legal_Entity__c": "US01", "Contract_Start__c": "2026-03-01",
            "Project_Code__c": f"P-{i}"}


def test_query_all_follows_next_records_url_to_the_end(org: SalesforceEmulator,
                                                       sf: Salesforce) -> None:
    acc = org.upsert_record("Account", {"Name": "Globex", "BillingCountry": "DE"})["Id"]
    ids = [org.upsert_record("Opportunity", deal(acc, i))["Id"] for i in range(5)]
    since = "2020-01-01T00:00:00.000Z"
    answer = sf.query_all(f"SELECT Id, Name, Account.Name FROM Opportunity WHERE "
                          f"SystemModstamp >= {since} AND IsWon = true "
                          "ORDER BY SystemModstamp, Id")
    assert answer["totalSize"] == 5 and answer["done"] is True
    assert [r["Id"] for r in answer["records"]] == ids
    first = answer["records"][0]
    assert first["attributes"]["type"] == "Opportunity"
    assert first["attributes"]["url"].endswith(f"/sobjects/Opportunity/{ids[0]}")
    assert first["Account"]["Name"] == "Globex"
    assert sf.api_usage["api-usage"] == (org.api_usage, org.api_limit)  # Sforce-Limit-Info


def test_get_and_upsert_round_trip(org: SalesforceEmulator, sf: Salesforce,
                                   cert: tuple[str, str]) -> None:
    acc = org.upsert_record("Account", {"Name": "Globex", "BillingCountry": "DE",
                                        "CurrencyIsoCode": "EUR"})["Id"]
    opp = org.upsert_record("Opportunity", deal(acc, 1))
    fetched = sf.Opportunity.get(opp["Id"])
    assert fetched["Id"] == opp["Id"] and fetched["Project_Code__c"] == "P-1"
    assert sf.Account.upsert("ERP_Id__c/C-100", {"Name": "Initech", "BillingCountry": "GB",
                                                 "CurrencyIsoCode": "GBP"}) == 201
    assert sf.Account.upsert("ERP_Id__c/C-100", {"Tax_Id__c": "GB123"}) == 200
    found = sf.query("SELECT Id, Name, Tax_Id__c FROM Account WHERE ERP_Id__c = 'C-100'")
    assert found["totalSize"] == 1 and found["records"][0]["Tax_Id__c"] == "GB123"
    with pytest.raises(SalesforceResourceNotFound):
        sf.Opportunity.get("006000000000000AAA")
    with pytest.raises(SalesforceMalformedRequest):
        sf.query("SELEKT nothing")
    # Our connector reads what the official client wrote and maps the won deal.
    client = SalesforceClient(org.url, access_token="x", instance_url=org.url,
                              verify=cert[0], rate_limit=RateLimit(1000, 1, burst=1000))
    records = client.query_all(SalesforceSource(client).soql("Opportunity", None))
    event = closed_won_event(records[0])
    assert isinstance(event, dict), event
    assert event["data"]["contract"]["billing_model"] == "fixed_fee"
    assert event["data"]["customer"]["id"] == acc
