"""NetSuite mapping, pure: commands → record bodies, invoice rows → events,
external ids, and the emulator's SuiteQL subset."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from billbridge.connectors.base import Malformed, OutboundCommand
from billbridge.connectors.netsuite import account_from_host
from billbridge.connectors.netsuite.client import concurrency_from, error_details
from billbridge.connectors.netsuite.emulator.suiteql import SuiteQLError, parse, run
from billbridge.connectors.netsuite.mapping import (
    MappingConfig,
    Refusal,
    canonical_id,
    customer_body,
    external_id,
    invoice_body,
    invoice_event,
    job_body,
    record_key,
    time_bill_body,
)

CONFIG = MappingConfig()


def cmd(kind: str, payload: dict[str, Any], refs: dict[str, str] | None = None
        ) -> OutboundCommand:
    return OutboundCommand(1, "netsuite", kind, "k" * 32, "agg", payload, refs=refs or {})


def test_external_ids_keep_netsuites_alphabet_and_encode_the_rest_reversibly() -> None:
    assert external_id("cust_hubspot_hs-co-1") == "cust_hubspot_hs-co-1"
    for odd in ("inv_ACME 7/1_2026-03-31", "bbx-41", "tc_té:1"):
        encoded = external_id(odd)
        assert encoded.startswith("bbx-") and encoded.replace("-", "").isalnum()
        assert canonical_id(encoded) == odd


def test_a_customer_carries_its_currency_country_subsidiary_and_tax_id() -> None:
    body = customer_body(cmd("customer.upsert", {
        "id": "cust_1", "name": "Globex", "currency": "GBP", "billing_country": "gb",
        "tax_id": "GB123"}), CONFIG)
    assert body["currency"] == {"id": "2"} and body["vatRegNumber"] == "GB123"
    assert body["addressBook"]["items"][0]["addressBookAddress"]["country"] == {"id": "GB"}
    with pytest.raises(Refusal, match="currency JPY has no NetSuite internal id") as refused:
        customer_body(cmd("customer.upsert", {"id": "c", "name": "n", "currency": "JPY",
                                              "billing_country": "JP"}), CONFIG)
    assert refused.value.code == "UNMAPPED_CURRENCY"


def test_a_project_needs_its_customer_at_netsuite() -> None:
    payload = {"code": "GLX-001", "name": "Globex rollout", "status": "active",
               "customer": "cust_1"}
    body = job_body(cmd("project.upsert", payload, {"customer:cust_1": "101"}), CONFIG)
    assert body["parent"] == {"id": "101"} and body["entityStatus"] == {"id": "2"}
    with pytest.raises(Refusal, match="NetSuite has no customer cust_1"):
        job_body(cmd("project.upsert", payload), CONFIG)
    with pytest.raises(Refusal, match="came without a customer"):
        job_body(cmd("project.upsert", {**payload, "customer": None}), CONFIG)


def test_a_time_bill_is_keyed_by_the_command_and_carries_decimals_as_strings() -> None:
    payload = {"id": "tc_te-1", "project": "GLX-001", "worker": "w-alice",
               "work_date": "2026-03-02", "hours": 7.5, "rate": "175.00", "currency": "USD",
               "billable": True}
    command = cmd("time_charge.post", payload, {"project:GLX-001": "102"})
    body = time_bill_body(command, MappingConfig(employees={"w-bob": "7"}))
    assert (body["hours"], body["rate"]) == ("7.5", "175.00")
    assert body["employee"] == {"externalId": "w-alice"} and body["customer"] == {"id": "102"}
    assert record_key(command) == "bb-" + "k" * 32
    bob = time_bill_body(cmd("time_charge.post", {**payload, "worker": "w-bob"},
                             {"project:GLX-001": "102"}), MappingConfig(employees={"w-bob": "7"}))
    assert bob["employee"] == {"id": "7"}


def test_an_invoice_bills_the_project_with_one_line_per_invoice_line() -> None:
    payload = {"id": "inv_GLX-001_2026-03-31", "customer": "cust_1", "project": "GLX-001",
               "currency": "USD", "po_number": "PO-9", "lines": [
                   {"description": "d", "quantity": "8", "unit_price": "175.00",
                    "amount": "1400.00", "tax_code": "VAT20"}]}
    body = invoice_body(cmd("invoice.create", payload, {"project:GLX-001": "102"}), CONFIG)
    assert body["entity"] == {"id": "102"} and body["otherRefNum"] == "PO-9"
    assert body["item"]["items"] == [{"item": {"id": "1"}, "description": "d", "quantity": "8",
                                      "rate": "175.00", "amount": "1400.00",
                                      "taxCode": {"refName": "VAT20"}}]
    assert "tranDate" not in body  # NetSuite dates it today
    dated = invoice_body(cmd("invoice.create", {**payload, "invoice_date": "2026-04-01"},
                             {"project:GLX-001": "102"}), CONFIG)
    assert dated["tranDate"] == "2026-04-01"


ROW = {"links": [], "id": "130", "externalid": "inv_GLX-001_2026-03-31", "status": "A",
       "foreigntotal": "1400", "foreignamountunpaid": "1000", "modified": "2026-03-05 10:00:00"}


def test_invoice_rows_become_status_events_with_the_amount_paid() -> None:
    event = invoice_event(ROW, MappingConfig(timezone="America/New_York"))
    assert isinstance(event, dict)
    assert event["data"] == {"invoice": "inv_GLX-001_2026-03-31", "erp_id": "130",
                             "status": "issued", "amount_paid": "400"}
    assert event["at"] == "2026-03-05T15:00:00+00:00"  # the account's zone, made UTC
    assert event["id"] == "invoice:130:2026-03-05 10:00:00:A"
    paid = invoice_event({**ROW, "status": "B", "foreignamountunpaid": "0"}, CONFIG)
    assert isinstance(paid, dict) and paid["data"]["status"] == "paid"
    assert invoice_event({**ROW, "status": "D"}, CONFIG) is None  # pending approval
    assert invoice_event({**ROW, "externalid": None}, CONFIG) is None  # not ours


@pytest.mark.parametrize(("change", "reason"), [
    ({"status": "Z"}, "unknown status 'Z'"),
    ({"modified": "3/5/2026"}, "is not YYYY-MM-DD HH24:MI:SS"),
    ({"foreigntotal": "n/a"}, "is not a number"),
])
def test_an_invoice_row_that_cannot_be_mapped_is_malformed_not_an_exception(
        change: dict[str, Any], reason: str) -> None:
    result = invoice_event({**ROW, **change}, CONFIG)
    assert isinstance(result, Malformed) and reason in result.reason
    assert result.raw["id"] == "130" and result.event_id


def test_an_unknown_time_zone_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="not an IANA time zone"):
        MappingConfig.from_options({"timezone": "Mars/Olympus"})


def test_error_documents_and_governance_limits_are_read() -> None:
    code, text = error_details({"o:errorDetails": [
        {"detail": "Please enter value(s) for: hours", "o:errorCode": "USER_ERROR",
         "o:errorPath": "hours"}]})
    assert code == "USER_ERROR" and "(at hours)" in text
    assert concurrency_from({"integrationLimitType": "integrationSpecific",
                             "integrationConcurrencyLimit": 3,
                             "accountUnallocatedConcurrencyLimit": 9}) == 3
    assert concurrency_from({"integrationLimitType": "accountLimit",
                             "accountUnallocatedConcurrencyLimit": 9}) == 9
    assert account_from_host("https://1234567-sb1.suitetalk.api.netsuite.com") == "1234567_SB1"


TABLES = {"timebill": lambda: [
    {"id": "1", "externalid": "bb-a", "hours": Decimal("2"), "isbillable": True,
     "lastmodifieddate": datetime(2026, 3, 5, 10, 0, 1)},
    {"id": "2", "externalid": "bb-b", "hours": Decimal("3"), "isbillable": False,
     "lastmodifieddate": datetime(2026, 3, 5, 10, 0, 0)}]}


def test_suiteql_subset_filters_orders_and_formats_as_netsuite_does() -> None:
    rows = run(parse("SELECT id, isbillable, TO_CHAR(lastmodifieddate, 'YYYY-MM-DD HH24:MI:SS') "
                     "AS m FROM timebill WHERE externalid IN ('bb-a', 'bb-b') AND lastmodifieddate "
                     ">= TO_TIMESTAMP('2026-03-05 10:00:00', 'YYYY-MM-DD HH24:MI:SS') "
                     "ORDER BY lastmodifieddate DESC"), TABLES)
    assert rows == [{"links": [], "id": "1", "isbillable": "T", "m": "2026-03-05 10:00:01"},
                    {"links": [], "id": "2", "isbillable": "F", "m": "2026-03-05 10:00:00"}]
    assert run(parse("SELECT id FROM timebill WHERE hours > 2"), TABLES) == [
        {"links": [], "id": "2"}]


@pytest.mark.parametrize("query", [
    "SELECT * FROM timebill", "SELECT id FROM timebill t JOIN job j ON j.id = t.customer",
    "SELECT id FROM timebill WHERE hours >", "SELECT nope FROM timebill",
    "SELECT id FROM invoice", "SELECT TO_CHAR(lastmodifieddate, 'DD.MM.YY') FROM timebill"])
def test_suiteql_outside_the_subset_is_refused_with_netsuites_search_error(query: str) -> None:
    with pytest.raises(SuiteQLError, match="Invalid search query"):
        run(parse(query), TABLES)


def test_a_payload_that_does_not_fit_is_rejected_without_a_call() -> None:
    from billbridge.connectors.base import ResultStatus
    from billbridge.connectors.netsuite.client import NetSuiteClient
    from billbridge.connectors.netsuite.target import NetSuiteTarget
    from billbridge.connectors.netsuite.tba import TbaCredentials

    client = NetSuiteClient("http://127.0.0.1:9", TbaCredentials("1", "c", "c", "t", "t"),
                            concurrency=1)
    bad_line = cmd("invoice.create", {"id": "inv_1", "customer": "c1", "currency": "USD",
                                      "lines": [{"description": "no amounts"}]},
                   {"customer:c1": "101"})
    unknown = OutboundCommand(2, "netsuite", "expense.post", "other-key", "agg", {"id": "x"})
    results = NetSuiteTarget(client).send([bad_line, unknown])
    assert [r.status for r in results] == [ResultStatus.REJECTED] * 2
    assert results[0].code == "INVALID_COMMAND" and "KeyError" in (results[0].message or "")
    assert client.requests_sent == 0
