"""Salesforce mapping, Outbound Message parsing and verification, SOQL and
cursors: no HTTP."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from billbridge.connectors.base import Connection, Malformed, SignatureError, WebhookRequest
from billbridge.connectors.salesforce import CONNECTOR
from billbridge.connectors.salesforce.mapping import (
    DEFAULT_WRITEBACK,
    MappingConfig,
    closed_won_event,
    customer_event,
    format_stamp,
    normal_stamp,
    writeback_fields,
    writeback_key,
)
from billbridge.connectors.salesforce.source import SalesforceSource, decode_cursor
from billbridge.connectors.salesforce.target import SalesforceTarget
from billbridge.connectors.salesforce.webhooks import (
    ACK,
    SalesforceOutboundMessages,
    outbound_message_xml,
    parse_message,
)
from billbridge.domain.events import parse_event

ORG = "00D5g000000EmUlAAA"
STAMP = "2026-03-05T10:00:00.000+0000"


def opportunity(**extra: Any) -> dict[str, Any]:
    return {"attributes": {"type": "Opportunity", "url": "/x"}, "Id": "0065g0000000001AAA",
            "SystemModstamp": STAMP, "StageName": "Closed Won", "IsWon": True,
            "AccountId": "0015g0000000001AAA", "Name": "Globex rollout", "Amount": 120000.0,
            "CloseDate": "2026-03-01", "CurrencyIsoCode": "usd",
            "Billing_Model__c": "Time and Materials", "Legal_Entity__c": "US01",
            "Contract_Start__c": "2026-03-01", "Contract_End__c": None,
            "Rate_Card__c": "rc-standard", "Budget_Cap__c": 40000.0,
            "Project_Code__c": "GLX-001",
            "Account": {"attributes": {"type": "Account", "url": "/y"}, "Name": "Globex GmbH",
                        "BillingCountry": "Germany", "Tax_Id__c": "DE123456789",
                        "CurrencyIsoCode": "EUR"},
            **extra}


def test_a_won_opportunity_maps_to_a_valid_closed_won_event() -> None:
    event = closed_won_event(opportunity())
    assert isinstance(event, dict)
    assert event["id"] == "opportunity:0065g0000000001AAA:2026-03-05T10:00:00.000Z"
    assert event["at"] == "2026-03-05T10:00:00.000Z"
    parsed = parse_event(event)
    data = parsed.data
    assert data["opportunity"]["amount"].startswith("120000")
    assert data["opportunity"]["currency"] == "USD"
    assert data["customer"]["billing_country"] == "DE"
    assert data["customer"]["currency"] == "EUR"
    assert data["customer"]["tax_id"] == "DE123456789"
    assert data["customer"]["legal_entity"] == "US01"
    assert data["contract"]["billing_model"] == "time_and_materials"
    assert data["contract"]["budget_cap"].startswith("40000")
    assert data["contract"]["end"] is None
    assert data["project"] == {**data["project"], "code": "GLX-001", "name": "Globex rollout"}


def test_the_field_map_is_data_overridable_per_connection() -> None:
    config = MappingConfig.from_options({"field_map": {"project.code": "Engagement_Code__c"},
                                         "won_stages": ["Won - Signed"]})
    record = opportunity(StageName="Won - Signed", Project_Code__c=None,
                         Engagement_Code__c="ENG-9")
    event = closed_won_event(record, config)
    assert isinstance(event, dict) and event["data"]["project"]["code"] == "ENG-9"
    assert "Account.Engagement_Code__c" not in config.opportunity_fields()
    assert "Engagement_Code__c" in config.opportunity_fields()
    assert "Account.Tax_Id__c" in config.opportunity_fields()


@pytest.mark.parametrize(("change", "words"), [
    ({"Amount": None}, ["opportunity.amount (field Amount)"]),
    ({"StageName": "Negotiation"}, ["StageName 'Negotiation'", "won stage"]),
    ({"Project_Code__c": ""}, ["project.code (field Project_Code__c)"]),
    ({"Account": None}, ["no Account"]),
    ({"Billing_Model__c": "Barter"}, ["contract.billing_model"]),
    ({"SystemModstamp": None}, ["SystemModstamp"]),
    ({"Contract_End__c": "2025-01-01"}, ["before start"]),
])
def test_mapping_mistakes_are_malformed_naming_the_record_and_field(
        change: dict[str, Any], words: list[str]) -> None:
    raw = opportunity(**change)
    result = closed_won_event(raw)
    assert isinstance(result, Malformed), result
    assert "Opportunity 0065g0000000001AAA" in result.reason
    for word in words:
        assert word in result.reason
    assert result.raw["Id"] == "0065g0000000001AAA"
    assert result.event_id is not None and result.event_id.startswith("opportunity:")


def test_an_account_becomes_customer_upserted_or_malformed() -> None:
    account = {"Id": "0015g0000000001AAA", "SystemModstamp": STAMP, "Name": "Initech",
               "BillingCountry": "GB", "CurrencyIsoCode": "GBP"}
    event = customer_event(account)
    assert isinstance(event, dict)
    assert parse_event(event).data["billing_country"] == "GB"
    assert event["id"] == "account:0015g0000000001AAA:2026-03-05T10:00:00.000Z"
    broken = customer_event({**account, "BillingCountry": None})
    assert isinstance(broken, Malformed)
    assert "customer.billing_country (field BillingCountry)" in broken.reason


def test_rest_and_soap_spellings_of_a_stamp_give_one_event_id() -> None:
    assert normal_stamp("2026-03-05T10:00:00.000+0000") == "2026-03-05T10:00:00.000Z"
    assert normal_stamp("2026-03-05T10:00:00Z") == "2026-03-05T10:00:00.000Z"
    assert normal_stamp("2026-03-05T11:00:00.120+01:00") == "2026-03-05T10:00:00.120Z"
    assert normal_stamp("yesterday") is None
    assert format_stamp(datetime(2026, 1, 2, 3, 4, 5, 678900, tzinfo=UTC)) == \
        "2026-01-02T03:04:05.678Z"


def test_soql_and_cursor() -> None:
    source = SalesforceSource(client=None)  # type: ignore[arg-type]
    soql = source.soql("Opportunity", "2026-03-05T10:00:00.000Z")
    assert "FROM Opportunity WHERE SystemModstamp >= 2026-03-05T10:00:00.000Z AND " \
        "IsWon = true ORDER BY SystemModstamp, Id" in soql
    assert "Account.Name" in soql
    assert source.soql("Account", None).endswith("FROM Account ORDER BY SystemModstamp, Id")
    assert decode_cursor('{"Account":"a","Opportunity":"b"}') == {"Account": "a",
                                                                  "Opportunity": "b"}
    assert decode_cursor("2026-03-05T10:00:00Z")["Opportunity"] == "2026-03-05T10:00:00.000Z"
    assert decode_cursor(None) == {}
    overlapping = SalesforceSource(client=None, lookback_seconds=60)  # type: ignore[arg-type]
    assert "SystemModstamp >= 2026-03-05T09:59:00.000Z" in overlapping.soql(
        "Account", "2026-03-05T10:00:00.000Z")


def message(org: str = ORG, stamp: str | None = None, **fields: Any) -> bytes:
    now = stamp or format_stamp(datetime.now(UTC))
    return outbound_message_xml(org, "Opportunity", [{"Id": "0065g0000000001AAA",
                                                      "SystemModstamp": now,
                                                      "StageName": "Closed Won",
                                                      "IsWon": True, **fields}])


def request(body: bytes, url: str = "https://hub/v1/webhooks/salesforce",
            **headers: str) -> WebhookRequest:
    return WebhookRequest("POST", url, {k.lower(): v for k, v in headers.items()}, body)


def test_an_outbound_message_parses() -> None:
    parsed = parse_message(message(Name="Fish & Chips <Ltd>", Amount=None))
    assert parsed.organization_id == ORG
    assert parsed.session_id is None
    assert parsed.enterprise_url.endswith(f"/services/Soap/c/61.0/{ORG}")
    note = parsed.notifications[0]
    assert note.sobject_type == "Opportunity"
    assert note.fields["Name"] == "Fish & Chips <Ltd>"
    assert note.fields["Amount"] is None and note.fields["IsWon"] == "true"
    with pytest.raises(ValueError, match="DTD"):
        parse_message(b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>')
    with pytest.raises(ValueError, match="notifications"):
        parse_message(b"<x/>")


def test_verification_accepts_the_org_and_refuses_others_bad_tokens_and_stale() -> None:
    now = time.time()
    receiver = SalesforceOutboundMessages(ORG[:15], secret="t0k")
    receiver.verify(request(message(), "https://hub/h?token=t0k"), now=now)
    receiver.verify(request(message(), **{"X-Billbridge-Token": "t0k"}), now=now)
    refusals = {
        "not the configured org": request(message("00D5g000000OtherAAA"), "https://h?token=t0k"),
        "does not match": request(message(), "https://hub/h?token=nope"),
        "not authenticated": request(message()),
        "stale": request(message(stamp="2026-01-01T00:00:00.000Z"), "https://h?token=t0k"),
        "no SystemModstamp": request(outbound_message_xml(ORG, "Account", [{"Id": "001"}]),
                                     "https://h?token=t0k"),
        "not a Salesforce Outbound Message": request(b"{}", "https://h?token=t0k"),
    }
    for words, delivery in refusals.items():
        with pytest.raises(SignatureError, match=words):
            receiver.verify(delivery, now=now)
    with pytest.raises(SignatureError, match="no Salesforce org id"):
        SalesforceOutboundMessages("").verify(request(message()), now=now)


def test_without_a_client_events_map_the_message_fields_and_the_ack_is_soap() -> None:
    receiver = SalesforceOutboundMessages(ORG)
    body = outbound_message_xml(ORG, "Account", [{
        "Id": "0015g0000000001AAA", "SystemModstamp": STAMP, "Name": "Initech",
        "BillingCountry": "GB", "CurrencyIsoCode": "GBP"}])
    events = receiver.events(request(body))
    assert [e["id"] for e in events] == ["account:0015g0000000001AAA:2026-03-05T10:00:00.000Z"]
    other = receiver.events(request(outbound_message_xml(ORG, "Lead", [{"Id": "00Q1"}])))
    assert isinstance(other[0], Malformed) and "'Lead' is not mapped" in other[0].reason
    media_type, content = receiver.acknowledgement()
    assert media_type.startswith("text/xml") and content == ACK
    assert b"<Ack>true</Ack>" in content


def test_the_connector_builds_its_roles_from_a_connection_with_string_options() -> None:
    assert CONNECTOR.vendor == "salesforce"
    assert CONNECTOR.source and CONNECTOR.target and CONNECTOR.webhooks
    settings = {"client_id": "c", "client_secret": "s", "refresh_token": "r", "org_id": ORG,
                "batch_size": "200", "requests_per_second": "5", "verify": "false",
                "won_stages": "Closed Won, Won - Signed",
                "field_map": '{"project.code": "Engagement_Code__c"}'}
    connection = Connection("crm", "salesforce", "https://login.example", settings, settings)
    source = CONNECTOR.source(connection)
    assert isinstance(source, SalesforceSource) and source.name == "crm"
    assert source.config.won_stages == ("Closed Won", "Won - Signed")
    assert source.config.name("project.code") == "Engagement_Code__c"
    assert source.client.batch_size == 200
    target = CONNECTOR.target(connection)
    assert target.name == "crm" and target.max_batch == 200
    receiver = CONNECTOR.webhooks(connection)
    assert isinstance(receiver, SalesforceOutboundMessages) and receiver.org_id == ORG


def test_the_writeback_map_merges_over_the_defaults_and_refuses_a_name_salesforce_cannot_have(
        ) -> None:
    settings = {"client_id": "c", "writeback": '{"invoice_status": "Billing_Status__c", '
                '"invoice_total": ""}', "writeback_key": "Legacy_Id__c"}
    assert CONNECTOR.target is not None
    target = CONNECTOR.target(Connection("crm", "salesforce", "https://login.example",
                                         settings, settings))
    assert isinstance(target, SalesforceTarget)
    assert target.writeback == {**{k: v for k, v in DEFAULT_WRITEBACK.items()
                                   if k != "invoice_total"},
                                "invoice_status": "Billing_Status__c"}
    assert target.writeback_key == "Legacy_Id__c"
    assert writeback_fields({}) == DEFAULT_WRITEBACK and writeback_key({}) == "Id"
    assert DEFAULT_WRITEBACK["erp_project_id"] == "BillBridge_ERP_Project_Id__c"
    with pytest.raises(ValueError, match="invoice_status -> 'Billing Status' is not a field"):
        writeback_fields({"writeback": {"invoice_status": "Billing Status"}})
    with pytest.raises(ValueError, match="writeback_key: 'Id; DROP' is not a field"):
        writeback_key({"writeback_key": "Id; DROP"})
