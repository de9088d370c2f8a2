"""QuickBooks mapping and query language: pure functions, hand-worked values."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from billbridge.connectors.base import Connection, Malformed
from billbridge.connectors.quickbooks import CONNECTOR, pairs
from billbridge.connectors.quickbooks.client import quote
from billbridge.connectors.quickbooks.emulator.query import (
    Condition,
    QueryError,
    field_value,
    matches,
    parse,
    run,
)
from billbridge.connectors.quickbooks.mapping import (
    display_name,
    hours_and_minutes,
    invoice_body,
    invoice_status,
    marker,
    project_name,
    read_marker,
    status_event,
    time_activity_body,
)
from billbridge.domain.records import Invoice, InvoiceLine, InvoiceStatus, TimeCharge

KEY = "0123456789abcdef0123456789abcdef"


def test_a_marker_is_found_wherever_quickbooks_leaves_it() -> None:
    text = marker("inv_GLX 001_2026-03-31", KEY)
    found = read_marker(f"Voided {text} (credit note to follow)")
    assert found is not None and (found.canonical_id, found.key) == ("inv_GLX 001_2026-03-31",
                                                                     KEY)
    assert read_marker("typed in QuickBooks") is None and read_marker(None) is None


def test_names_are_one_line_without_colons_and_at_most_100_characters() -> None:
    assert display_name("  Globex:\tEMEA \n Ltd ") == "Globex- EMEA Ltd"
    assert len(display_name("x" * 150)) == 100
    assert project_name({"code": "GLX-1", "name": "GLX-1"}) == "GLX-1"
    assert project_name({"code": "GLX-1", "name": "Rollout: phase 2"}) == "GLX-1 Rollout- phase 2"


@pytest.mark.parametrize(("hours", "expected"), [
    ("8", (8, 0)), ("7.33", (7, 20)), ("0.5", (0, 30)), ("0.01", (0, 1)), ("2.99", (2, 59)),
    ("0.00", (0, 0))])
def test_hours_round_half_up_to_whole_minutes(hours: str, expected: tuple[int, int]) -> None:
    assert hours_and_minutes(Decimal(hours)) == expected


def test_a_cost_line_is_not_billable_and_carries_its_cost_rate() -> None:
    charge = TimeCharge(id="tc_te-1", time_entry="te-1", project="P", worker="w-bob",
                        work_date=date(2026, 3, 2), hours=Decimal("1.5"), rate=Decimal("70.00"),
                        amount=Decimal("105.00"), currency="USD", billable=False,
                        config_version=1, source_version=2)
    body = time_activity_body(charge, KEY, employee="55", project="9", item=None)
    assert (body["BillableStatus"], body["CostRate"], body["Hours"], body["Minutes"]) == (
        "NotBillable", Decimal("70.00"), 1, 30)
    assert "HourlyRate" not in body and "ItemRef" not in body
    assert read_marker(body["Description"]) is not None


def _invoice(tax_code: str | None) -> Invoice:
    line = InvoiceLine(description="te-1", quantity=Decimal(2), unit_price=Decimal("100"),
                       amount=Decimal("200.00"), tax_code=tax_code)
    return Invoice(id="inv_1", customer="c", currency="GBP", lines=(line,),
                   subtotal=Decimal("200.00"), tax=Decimal("40.00"), total=Decimal("240.00"))


def test_invoice_lines_take_the_mapped_tax_code_and_the_tax_total() -> None:
    body = invoice_body(_invoice("GB-VAT20"), KEY, customer="7", item="2",
                        tax_codes={"GB-VAT20": "3"})
    assert isinstance(body, dict)
    [line] = body["Line"]
    assert line["SalesItemLineDetail"] == {"ItemRef": {"value": "2"}, "Qty": Decimal(2),
                                           "UnitPrice": Decimal("100"),
                                           "TaxCodeRef": {"value": "3"}}
    assert (body["TxnTaxDetail"], body["CurrencyRef"]) == ({"TotalTax": Decimal("40.00")},
                                                           {"value": "GBP"})
    untaxed = invoice_body(_invoice(None), KEY, customer="7", item="2", tax_codes={})
    assert isinstance(untaxed, dict) and "TaxCodeRef" not in untaxed["Line"][0][
        "SalesItemLineDetail"]
    refused = invoice_body(_invoice("GB-VAT20"), KEY, customer="7", item="2", tax_codes={})
    assert isinstance(refused, str) and "tax_codes" in refused
    dated = invoice_body(_invoice(None).model_copy(update={"invoice_date": date(2026, 4, 1)}),
                         KEY, customer="7", item="2", tax_codes={})
    assert isinstance(dated, dict) and dated["TxnDate"] == "2026-04-01"
    assert "TxnDate" not in untaxed


def qbo_invoice(**changes: Any) -> dict[str, Any]:
    return {"Id": "41", "SyncToken": "2", "TotalAmt": Decimal("1200.5"),
            "Balance": Decimal("1200.5"), "CurrencyRef": {"value": "USD"},
            "PrivateNote": marker("inv_P_2026-03-31", KEY),
            "MetaData": {"LastUpdatedTime": "2026-04-02T10:00:00-07:00"}, **changes}


@pytest.mark.parametrize(("changes", "status"), [
    ({}, InvoiceStatus.ISSUED),
    ({"Balance": Decimal("200")}, InvoiceStatus.ISSUED),
    ({"Balance": 0}, InvoiceStatus.PAID),
    ({"TotalAmt": 0, "Balance": 0, "PrivateNote": "Voided " + marker("inv_P", KEY)},
     InvoiceStatus.VOID),
    ({"TotalAmt": 0, "Balance": 0}, InvoiceStatus.ISSUED),  # a zero invoice is not paid
])
def test_invoice_status_from_balance_and_voiding(changes: dict[str, Any],
                                                 status: InvoiceStatus) -> None:
    assert invoice_status(qbo_invoice(**changes)) is status


def test_a_status_event_is_named_by_the_invoices_state() -> None:
    event = status_event(qbo_invoice(Balance=Decimal("200.5")), source="qbo")
    assert event == {"type": "invoice.status_changed", "source": "qbo",
                     "id": "qbo-invoice:41:issued:1000.00", "at": "2026-04-02T10:00:00-07:00",
                     "data": {"invoice": "inv_P_2026-03-31", "erp_id": "41",
                              "status": "issued", "amount_paid": "1000.00"}}
    yen = status_event(qbo_invoice(CurrencyRef={"value": "JPY"}, TotalAmt=5000, Balance=0),
                       source="qbo")
    assert isinstance(yen, dict) and yen["data"]["amount_paid"] == "5000"
    assert status_event(qbo_invoice(PrivateNote="made by hand"), source="qbo") is None


@pytest.mark.parametrize(("changes", "reason"), [
    ({"MetaData": {"LastUpdatedTime": "2026-04-02T10:00:00"}}, "UTC offset"),
    ({"MetaData": {}}, "Invalid isoformat"),
    ({"TotalAmt": 1200.5}, "float"),
    ({"CurrencyRef": None}, "currency"),
])
def test_an_unreadable_invoice_of_ours_is_malformed(changes: dict[str, Any], reason: str) -> None:
    found = status_event(qbo_invoice(**changes), source="qbo")
    assert isinstance(found, Malformed) and reason in found.reason
    assert found.event_id == "qbo-invoice:41:2" and "inv_P_2026-03-31" in found.reason


# -- the query language ---------------------------------------------------------------
def test_the_sdks_statements_parse() -> None:
    query = parse("SELECT * FROM Customer WHERE DisplayName = 'O\\'Brien' AND Active IN "
                  "(true, false) ORDERBY Id DESC STARTPOSITION 3 MAXRESULTS 5000")
    assert (query.entity, query.start, query.max_results, query.order_by) == (
        "Customer", 3, 1000, (("Id", True),))
    assert query.where == (Condition("DisplayName", "=", "O'Brien"),
                           Condition("Active", "in", (True, False)))
    assert parse("SELECT COUNT(*) FROM Invoice").count
    assert parse("SELECT *, Sku FROM Item ORDER BY Name").order_by == (("Name", False),)
    assert parse(f"select * from Customer where DisplayName = {quote(chr(39) + 'a')}").where[
        0].value == "'a"


@pytest.mark.parametrize("statement", [
    "select * from Customer where Id = '1' or Id = '2'", "delete from Customer",
    "select * Customer", "select * from Customer where Id ~ 1"])
def test_what_quickbooks_refuses_does_not_parse(statement: str) -> None:
    with pytest.raises(QueryError):
        parse(statement)


def test_conditions_compare_refs_instants_numbers_and_patterns() -> None:
    record = {"CustomerRef": {"value": "58"}, "TotalAmt": Decimal("10.5"), "DisplayName": "Acme",
              "MetaData": {"LastUpdatedTime": "2026-04-02T10:00:00-07:00"}}
    assert field_value(record, "CustomerRef") == "58"
    assert matches(record, Condition("MetaData.LastUpdatedTime", ">=",
                                     "2026-04-02T17:00:00+00:00"))
    assert not matches(record, Condition("MetaData.LastUpdatedTime", ">",
                                         "2026-04-02T17:00:00Z"))
    assert matches(record, Condition("TotalAmt", ">", Decimal(10)))
    assert matches(record, Condition("DisplayName", "like", "ac%"))
    assert not matches(record, Condition("Missing", "=", "x"))


def test_run_orders_and_pages() -> None:
    rows = [{"Id": str(i), "Name": name} for i, name in enumerate("dbca")]
    query = parse("select * from Item orderby Name startposition 2 maxresults 2")
    assert [r["Name"] for r in run(query, rows)] == ["b", "c"]


# -- connection options --------------------------------------------------------------
def test_mapping_options_come_as_text_or_mappings() -> None:
    assert pairs("US-EXEMPT=NON, GB-VAT20 = 3") == {"US-EXEMPT": "NON", "GB-VAT20": "3"}
    assert pairs({"w-alice": 55}) == {"w-alice": "55"} and pairs(None) == {}
    with pytest.raises(ValueError, match="name=value"):
        pairs("US-EXEMPT")


def test_a_connection_needs_its_realm() -> None:
    assert CONNECTOR.target is not None
    with pytest.raises(ValueError, match="realm id"):
        CONNECTOR.target(Connection("erp", "quickbooks", "http://127.0.0.1:9"))
