"""Xero mapping, pure: commands into Xero's records with hand-worked figures,
Xero invoices into canonical events or Malformed, and the client's small
wire helpers."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from billbridge.connectors.base import Malformed, TransientError
from billbridge.connectors.fields import MARKER
from billbridge.connectors.xero import mapping
from billbridge.connectors.xero.client import (
    XeroClient,
    call_key,
    read_error,
    to_wire,
    token_url_for,
    xero_rate_limit,
)
from billbridge.connectors.xero.emulator.query import WhereError, where
from billbridge.connectors.xero.mapping import MappingError, XeroSettings

SETTINGS = XeroSettings(tax_types={"VAT20": "OUTPUT2", "US-EXEMPT": "NONE"})
KEY = "0123456789abcdef0123456789abcdef"


def charge(**overrides: Any) -> dict[str, Any]:
    return {"id": "tc_te-1", "time_entry": "te-1", "project": "GLX-001", "worker": "w-alice",
            "work_date": "2026-03-02", "hours": "8.00", "rate": "175.00", "amount": "1400.00",
            "currency": "USD", "billable": True, "tax_code": "VAT20", "rate_card": "rc",
            "rate_card_version": 1, "config_version": 3, "source_version": 1, **overrides}


def invoice(**overrides: Any) -> dict[str, Any]:
    return {"id": "inv_GLX-001_2026-03-31", "customer": "cust_hubspot_1", "project": "GLX-001",
            "currency": "GBP", "po_number": None, "subtotal": "1900.00", "tax": "380.00",
            "total": "2280.00", "status": "draft", "lines": [
                {"description": "te-1 8 h", "quantity": "8.00", "unit_price": "175.00",
                 "amount": "1400.00", "tax_code": "VAT20", "source": "tc_te-1"},
                {"description": "Retainer 2026-03", "quantity": "1", "unit_price": "500.00",
                 "amount": "500.00", "tax_code": "VAT20", "source": "retainer:ct-1:2026-03"}],
            **overrides}


def test_settings_read_options_including_a_tax_map_given_as_json_text() -> None:
    settings = XeroSettings.from_options({"tax_types": '{"VAT20": "OUTPUT2"}',
                                          "invoice_status": "authorised", "wip_account": 1250,
                                          "payment_terms_days": "14"})
    assert settings.tax_types == {"VAT20": "OUTPUT2"}
    assert (settings.invoice_status, settings.wip_account, settings.payment_terms_days) == (
        "AUTHORISED", "1250", 14)
    assert XeroSettings.from_options({}) == XeroSettings()
    with pytest.raises(ValueError, match="invoice_status must be one of"):
        XeroSettings.from_options({"invoice_status": "PAID"})
    with pytest.raises(ValueError, match="tax_types must be a JSON object"):
        XeroSettings.from_options({"tax_types": "VAT20=OUTPUT2"})


def test_an_unmapped_tax_code_is_a_clear_rejection_naming_the_mapped_ones() -> None:
    with pytest.raises(MappingError) as refused:
        SETTINGS.tax_type("RC0")
    assert refused.value.code == "UNMAPPED_TAX_CODE"
    assert "'RC0'" in str(refused.value) and "US-EXEMPT, VAT20" in str(refused.value)
    assert SETTINGS.tax_type(None) is None


def test_a_customer_becomes_a_contact_numbered_with_its_canonical_id() -> None:
    contact = mapping.contact({"id": "cust_hubspot_1", "name": "Globex LLC", "currency": "USD",
                               "billing_country": "US", "tax_id": "US-123"})
    assert contact == {"Name": "Globex LLC", "ContactNumber": "cust_hubspot_1",
                       "DefaultCurrency": "USD", "TaxNumber": "US-123",
                       "Addresses": [{"AddressType": "POBOX", "Country": "US"}]}
    update = mapping.contact({"id": "c", "name": "N", "currency": "USD",
                              "billing_country": "US"}, contact_id="abc")
    assert update["ContactID"] == "abc" and "TaxNumber" not in update
    with pytest.raises(MappingError, match="longer than Xero's 50-character ContactNumber"):
        mapping.contact({"id": "c" * 51, "name": "N", "currency": "USD",
                         "billing_country": "US"})
    with pytest.raises(MappingError, match="name"):
        mapping.contact({"id": "c", "currency": "USD", "billing_country": "US"})


def test_a_closed_project_archives_its_option_and_others_keep_it_active() -> None:
    assert mapping.tracking_option({"code": "P-1", "status": "closed"}) == {
        "Name": "P-1", "Status": "ARCHIVED"}
    assert mapping.tracking_option({"code": "P-1", "status": "on_hold"}) == {
        "Name": "P-1", "Status": "ACTIVE"}
    with pytest.raises(MappingError, match="unknown status 'done'"):
        mapping.tracking_option({"code": "P-1", "status": "done"})
    with pytest.raises(MappingError, match="without a project code"):
        mapping.tracking_option({"status": "active"})


def test_billable_time_accrues_wip_against_revenue_on_the_work_date() -> None:
    journal = mapping.labour_journal(charge(), KEY, SETTINGS, "USD")
    assert journal["Date"] == "2026-03-02" and journal["Status"] == "POSTED"
    assert journal["LineAmountTypes"] == "NoTax"
    assert journal["Narration"].endswith(f"[bb:{KEY}]")
    assert MARKER.search(journal["Narration"]).group(1) == KEY  # type: ignore[union-attr]
    [debit, credit] = journal["JournalLines"]
    tracked = [{"Name": "Project", "Option": "GLX-001"}]
    assert (debit["AccountCode"], debit["LineAmount"], debit["Tracking"]) == (
        "1210", Decimal("1400.00"), tracked)
    assert (credit["AccountCode"], credit["LineAmount"], credit["Tracking"]) == (
        "200", Decimal("-1400.00"), tracked)


def test_a_cost_line_moves_labour_into_the_projects_cost_of_sales() -> None:
    journal = mapping.labour_journal(charge(billable=False, amount="640.00", rate="80.00"),
                                     KEY, SETTINGS, "USD")
    [debit, credit] = journal["JournalLines"]
    assert (debit["AccountCode"], debit["LineAmount"]) == ("310", Decimal("640.00"))
    assert (credit["AccountCode"], credit["LineAmount"], credit["Tracking"]) == (
        "477", Decimal("-640.00"), [])  # the wages pool is not the project's


def test_a_charge_not_in_the_base_currency_is_refused_not_posted_wrong() -> None:
    with pytest.raises(MappingError) as refused:
        mapping.labour_journal(charge(currency="EUR"), KEY, SETTINGS, "USD")
    assert refused.value.code == "CURRENCY_NOT_BASE" and "base currency USD" in str(refused.value)


def test_a_reversal_turns_the_signs_and_keeps_date_accounts_and_tracking() -> None:
    original = {"ManualJournalID": "mj-1", "Status": "POSTED", "Date": "/Date(1772409600000+0000)/",
                "JournalLines": [
                    {"LineAmount": Decimal("1400.00"), "AccountCode": "1210",
                     "Description": "te-1", "Tracking": [{"Name": "Project", "Option": "P-1",
                                                          "TrackingOptionID": "x"}]},
                    {"LineAmount": Decimal("-1400.00"), "AccountCode": "200", "Tracking": []}]}
    journal = mapping.reversal_journal(original, "tc_te-1", KEY)
    assert journal["Date"] == "2026-03-02" and "reversal of tc_te-1 (journal mj-1)" in \
        journal["Narration"]
    assert [(x["AccountCode"], x["LineAmount"]) for x in journal["JournalLines"]] == [
        ("1210", Decimal("-1400.00")), ("200", Decimal("1400.00"))]
    assert journal["JournalLines"][0]["Tracking"] == [{"Name": "Project", "Option": "P-1"}]
    with pytest.raises(MappingError) as voided:
        mapping.reversal_journal({**original, "Status": "VOIDED"}, "tc_te-1", KEY)
    assert voided.value.code == "NOTHING_TO_REVERSE"


def test_an_invoice_clears_wip_for_time_and_bills_the_rest_to_sales() -> None:
    record = mapping.invoice(invoice(), "contact-1", SETTINGS, date(2026, 4, 1))
    assert (record["Type"], record["InvoiceNumber"], record["Contact"]) == (
        "ACCREC", "inv_GLX-001_2026-03-31", {"ContactID": "contact-1"})
    assert (record["Status"], record["CurrencyCode"], record["DueDate"]) == (
        "DRAFT", "GBP", "2026-05-01")
    assert record["Reference"] == "GLX-001"  # no PO number: the project code
    time_line, fee_line = record["LineItems"]
    assert (time_line["AccountCode"], time_line["TaxType"], time_line["Quantity"],
            time_line["UnitAmount"]) == ("1210", "OUTPUT2", Decimal("8.00"), Decimal("175.00"))
    assert fee_line["AccountCode"] == "200"
    assert time_line["Tracking"] == [{"Name": "Project", "Option": "GLX-001"}]
    with_po = mapping.invoice(invoice(po_number="PO-9"), "c", SETTINGS, date(2026, 4, 1))
    assert with_po["Reference"] == "PO-9"
    assert record["Date"] == "2026-04-01"  # no invoice date: today's
    dated = mapping.invoice(invoice(invoice_date="2026-03-31"), "c", SETTINGS, date(2026, 4, 9))
    assert (dated["Date"], dated["DueDate"]) == ("2026-03-31", "2026-04-30")
    with pytest.raises(MappingError, match="'ZERO'"):
        bad = invoice()
        bad["lines"] = [{**bad["lines"][0], "tax_code": "ZERO"}]
        mapping.invoice(bad, "c", SETTINGS, date(2026, 4, 1))
    with pytest.raises(MappingError, match="has no lines"):
        mapping.invoice(invoice(lines=[]), "c", SETTINGS, date(2026, 4, 1))


def xero_invoice(**overrides: Any) -> dict[str, Any]:
    return {"InvoiceID": "inv-guid", "InvoiceNumber": "inv_GLX-001_2026-03-31",
            "Status": "AUTHORISED", "AmountPaid": Decimal("400.00"),
            "UpdatedDateUTC": "/Date(1775044800000+0000)/", **overrides}


def test_xero_invoice_states_map_to_canonical_status_events() -> None:
    event = mapping.status_event(xero_invoice(), source="xero")
    assert isinstance(event, dict)
    assert event["data"] == {"invoice": "inv_GLX-001_2026-03-31", "erp_id": "inv-guid",
                             "status": "issued", "amount_paid": "400.00"}
    assert event["id"] == "xero-invoice:inv-guid:AUTHORISED:400.00"
    assert event["at"] == "2026-04-01T12:00:00+00:00"
    statuses = {s: mapping.status_event(xero_invoice(Status=s), source="xero")
                for s in ("PAID", "VOIDED", "DELETED", "DRAFT", "SUBMITTED")}
    assert [e["data"]["status"] for e in statuses.values() if isinstance(e, dict)] == [
        "paid", "void", "void"]
    assert statuses["DRAFT"] is None and statuses["SUBMITTED"] is None
    # The same state read again (a later edit of the reference) is the same event.
    later = mapping.status_event(xero_invoice(UpdatedDateUTC="/Date(1775131200000+0000)/"),
                                 source="xero")
    assert isinstance(later, dict) and later["id"] == event["id"]


@pytest.mark.parametrize(("change", "reason"), [
    ({"Status": "PENDING"}, "unknown Status 'PENDING'"),
    ({"InvoiceNumber": ""}, "has no InvoiceNumber"),
    ({"AmountPaid": "lots"}, "AmountPaid is 'lots'"),
    ({"UpdatedDateUTC": None}, "has no UpdatedDateUTC"),
    ({"InvoiceID": None}, "without an InvoiceID"),
])
def test_an_invoice_that_cannot_be_mapped_is_malformed_with_its_raw_record(
        change: dict[str, Any], reason: str) -> None:
    result = mapping.status_event(xero_invoice(**change), source="xero")
    assert isinstance(result, Malformed)
    assert reason in result.reason and result.raw["InvoiceNumber"] == \
        xero_invoice(**change)["InvoiceNumber"]


def test_xero_dates_and_numbers_are_read_exactly() -> None:
    assert mapping.parse_xero_datetime("/Date(1772409600000+0000)/") == datetime(
        2026, 3, 2, tzinfo=UTC)
    assert mapping.parse_xero_datetime("2026-03-02T10:00:00") == datetime(
        2026, 3, 2, 10, tzinfo=UTC)
    assert mapping.decimal_of(1400.1, "x") == Decimal("1400.1")
    with pytest.raises(ValueError, match="not a number"):
        mapping.decimal_of(True, "x")


def test_money_goes_on_the_wire_as_numbers_only_when_nothing_is_lost() -> None:
    assert to_wire({"a": [Decimal("1400.00"), Decimal("-0.01")]}) == {"a": [1400.0, -0.01]}
    with pytest.raises(ValueError, match="without rounding"):
        to_wire(Decimal("0.12345678901234567890"))


def test_a_calls_idempotency_key_is_its_commands_keys_whatever_their_order() -> None:
    first = call_key("PUT", "/ManualJournals", ["b", "a"])
    assert first == call_key("PUT", "/ManualJournals", ["a", "b"])
    assert first != call_key("PUT", "/ManualJournals", ["a"])
    assert first != call_key("PUT", "/Invoices", ["a", "b"])
    assert len(first) <= 128


def test_the_rate_limit_never_allows_more_than_sixty_calls_in_a_minute() -> None:
    limit = xero_rate_limit()
    assert limit.burst + limit.per_second * 60 <= 60
    assert token_url_for("https://api.xero.com/api.xro/2.0") == \
        "https://identity.xero.com/connect/token"
    assert token_url_for("http://127.0.0.1:9/api.xro/2.0") == "http://127.0.0.1:9/connect/token"


@pytest.mark.parametrize(("status", "body", "expected"), [
    (400, {"ErrorNumber": 10, "Type": "ValidationException", "Message": "A validation "
           "exception occurred", "Elements": [{"ValidationErrors": [
               {"Message": "Invoice # must be unique."}]}]},
     ("ValidationException", "Invoice # must be unique.")),
    (401, {"Title": "Unauthorized", "Status": 401, "Detail": "TokenExpired: token expired"},
     ("Unauthorized", "Unauthorized: TokenExpired: token expired")),
    (400, {"error": "invalid_grant"}, ("invalid_grant", "invalid_grant")),
    (404, "The resource you're looking for cannot be found",
     ("HTTP_404", "The resource you're looking for cannot be found")),
])
def test_xero_error_bodies_are_read_into_a_code_and_a_message(
        status: int, body: Any, expected: tuple[str, str]) -> None:
    response = httpx.Response(status, json=body) if isinstance(body, dict) else \
        httpx.Response(status, text=body)
    assert read_error(response) == expected


def test_the_where_filter_reads_xeros_syntax() -> None:
    row = {"Name": "Globex", "Contact": {"ContactID": "AB-1"}, "Total": Decimal("10")}
    assert where('Name=="globex" AND Contact.ContactID==Guid("ab-1")')(row)
    assert where('(Name.StartsWith("Glo") || Name=="x") && Total>=5')(row)
    assert not where('Name!="Globex" OR Total<5')(row)
    assert where('Name.Contains("[bb:1]") OR Name.EndsWith("bex")')(row)
    with pytest.raises(WhereError):
        where('Name=="a" AND')
    with pytest.raises(WhereError):
        where("Name ~ 1")


@pytest.mark.parametrize("body", ["<html>gateway</html>", '{"Invoices": "none"}'])
def test_an_answer_that_cannot_be_read_is_transient_since_a_write_may_have_applied(
        body: str) -> None:
    client = XeroClient("http://xero.invalid/api.xro/2.0", tenant_id="t", access_token="a",
                        transport=httpx.MockTransport(lambda _r: httpx.Response(200, text=body)))
    with pytest.raises(TransientError) as unreadable:
        client.write("PUT", "/Invoices", "Invoices", [{"Type": "ACCREC"}],
                     idempotency_key="k")
    assert unreadable.value.code == "TARGET_PROTOCOL"
