"""The official ``xero-python`` (15), unchanged, against the emulator: if
Xero's own SDK can create and read contacts, invoices, manual journals and
tracking options, read payments, and read Xero's errors through it, the
emulator's paths, field names and JSON shapes are Xero's."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from xero_python.accounting import (  # type: ignore[import-untyped]
    AccountingApi,
    Address,
    Contact,
    Contacts,
    CurrencyCode,
    Invoice,
    Invoices,
    LineAmountTypes,
    LineItem,
    LineItemTracking,
    ManualJournal,
    ManualJournalLine,
    ManualJournals,
    TrackingCategory,
    TrackingOption,
)
from xero_python.api_client import ApiClient, Configuration  # type: ignore[import-untyped]
from xero_python.api_client.oauth2 import OAuth2Token  # type: ignore[import-untyped]
from xero_python.exceptions import ApiException  # type: ignore[import-untyped]
from xero_python.exceptions.http_status_exceptions import (  # type: ignore[import-untyped]
    BadRequestException,
    NotFoundException,
    RateLimitException,
)

from billbridge.connectors.xero.emulator import DEFAULT_TENANT, XeroEmulator

ACCESS = "contract-access-token"
TENANT = DEFAULT_TENANT


@pytest.fixture
def xero() -> Iterator[XeroEmulator]:
    emulator = XeroEmulator(access_token=ACCESS)
    with emulator:
        yield emulator


def sdk_for(emulator: XeroEmulator, token: str = ACCESS) -> Any:
    stored = {"access_token": token, "token_type": "Bearer", "expires_in": 1800,
              "scope": ["accounting.transactions", "accounting.contacts",
                        "accounting.settings"]}
    client = ApiClient(Configuration(oauth2_token=OAuth2Token(client_id="id",
                                                              client_secret="secret")),
                       oauth2_token_getter=lambda: stored,
                       oauth2_token_saver=stored.update)
    return AccountingApi(client, base_url=f"{emulator.url}/api.xro/2.0")


@pytest.fixture
def api(xero: XeroEmulator) -> Any:
    return sdk_for(xero)


def _project_option(api: Any) -> str:
    made = api.create_tracking_category(TENANT, TrackingCategory(name="Project"))
    category = made.tracking_categories[0].tracking_category_id
    api.create_tracking_options(TENANT, category, TrackingOption(name="GLX-001"))
    return str(category)


def test_contacts_are_created_in_bulk_with_per_element_errors_and_found_by_number(
        api: Any) -> None:
    answer = api.create_contacts(TENANT, Contacts(contacts=[
        Contact(name="Globex LLC", contact_number="cust_hubspot_1",
                default_currency=CurrencyCode.USD, tax_number="US-123",
                addresses=[Address(address_type="POBOX", country="US")]),
        Contact(name="globex llc", contact_number="cust_hubspot_2")]),
        summarize_errors=False)
    made, twin = answer.contacts
    assert made.contact_id and made.status_attribute_string == "OK"
    assert twin.has_validation_errors and "must be unique across all active contacts" in \
        twin.validation_errors[0].message
    found = api.get_contacts(TENANT, where='ContactNumber=="cust_hubspot_1"')
    assert [c.contact_id for c in found.contacts] == [made.contact_id]
    assert found.contacts[0].default_currency == CurrencyCode.USD
    assert found.contacts[0].updated_date_utc.tzinfo is not None


def test_an_idempotency_key_answers_the_first_result_and_its_absence_books_twins(
        api: Any, xero: XeroEmulator) -> None:
    _project_option(api)
    journal = ManualJournals(manual_journals=[ManualJournal(
        narration="billbridge tc_te-1 [bb:abc]", date=date(2026, 3, 2), status="POSTED",
        journal_lines=[
            ManualJournalLine(line_amount=1400.0, account_code="1210",
                              tracking=[TrackingCategory(name="Project", option="GLX-001")]),
            ManualJournalLine(line_amount=-1400.0, account_code="200")])])
    first = api.create_manual_journals(TENANT, journal, idempotency_key="key-1")
    again = api.create_manual_journals(TENANT, journal, idempotency_key="key-1")
    assert first.manual_journals[0].manual_journal_id == \
        again.manual_journals[0].manual_journal_id
    assert len(xero.journals()) == 1 and xero.idempotent_replays == 1
    api.create_manual_journals(TENANT, journal)  # no key: Xero books it again
    assert len(xero.journals()) == 2
    found = api.get_manual_journals(TENANT, where='Narration.Contains("[bb:abc]")', page=1)
    assert len(found.manual_journals) == 2
    line = found.manual_journals[0].journal_lines[0]
    assert line.line_amount == 1400.0 and line.tracking[0].option == "GLX-001"
    assert found.manual_journals[0].date == date(2026, 3, 2)


def test_invoices_are_created_read_by_number_and_a_number_is_unique(api: Any) -> None:
    category = _project_option(api)
    contact = api.create_contacts(TENANT, Contacts(contacts=[Contact(name="Globex")]))
    contact_id = contact.contacts[0].contact_id

    def invoice(number: str) -> Invoice:
        return Invoice(type="ACCREC", contact=Contact(contact_id=contact_id),
                       invoice_number=number, reference="PO-77",
                       currency_code=CurrencyCode.USD, status="AUTHORISED",
                       line_amount_types=LineAmountTypes.EXCLUSIVE,
                       due_date=date(2026, 4, 30), line_items=[
                           LineItem(description="te-1 8 h", quantity=8.0, unit_amount=175.0,
                                    account_code="1210", tax_type="OUTPUT2",
                                    tracking=[LineItemTracking(name="Project",
                                                               option="GLX-001")])])

    answer = api.create_invoices(TENANT, Invoices(invoices=[
        invoice("inv_GLX-001_2026-03-31"), invoice("inv_GLX-001_2026-03-31")]),
        summarize_errors=False, idempotency_key="inv-key")
    made, twin = answer.invoices
    assert made.invoice_id and made.total == 1680.0 and made.total_tax == 280.0
    assert [e.message for e in twin.validation_errors] == ["Invoice # must be unique."]
    found = api.get_invoices(TENANT, invoice_numbers=["inv_GLX-001_2026-03-31"],
                             created_by_my_app=True)
    [read] = found.invoices
    assert (read.invoice_id, read.status, read.reference) == (made.invoice_id, "AUTHORISED",
                                                              "PO-77")
    one = api.get_invoice(TENANT, made.invoice_id).invoices[0]
    assert one.line_items[0].tracking[0].tracking_category_id == category
    assert one.due_date == date(2026, 4, 30) and one.amount_due == 1680.0


def test_payments_are_read_back_since_a_moment_with_their_invoice(
        api: Any, xero: XeroEmulator) -> None:
    contact = api.create_contacts(TENANT, Contacts(contacts=[Contact(name="Initech")]))
    made = api.create_invoices(TENANT, Invoices(invoices=[Invoice(
        type="ACCREC", contact=Contact(contact_id=contact.contacts[0].contact_id),
        status="AUTHORISED", line_items=[LineItem(description="fee", quantity=1.0,
                                                  unit_amount=500.0, account_code="200")])]))
    invoice_id = made.invoices[0].invoice_id
    before = datetime.now(UTC) - timedelta(seconds=5)
    xero.pay(invoice_id, Decimal("200.00"), date(2026, 4, 2))
    xero.pay(invoice_id, Decimal("300.00"), date(2026, 4, 9))
    payments = api.get_payments(TENANT, if_modified_since=before,
                                where='PaymentType=="ACCRECPAYMENT"').payments
    assert [p.amount for p in payments] == [200.0, 300.0]
    assert payments[0].invoice.invoice_id == invoice_id and payments[0].status == "AUTHORISED"
    assert payments[1].date == date(2026, 4, 9)
    later = api.get_payments(TENANT, if_modified_since=datetime.now(UTC) + timedelta(hours=1))
    assert later.payments == []
    paid = api.get_invoices(TENANT, i_ds=[invoice_id]).invoices[0]
    assert (paid.status, paid.amount_paid, paid.amount_due) == ("PAID", 500.0, 0.0)


def test_tracking_options_are_listed_and_archived(api: Any) -> None:
    category = _project_option(api)
    listed = api.get_tracking_categories(TENANT, where='Name=="Project"')
    option = listed.tracking_categories[0].options[0]
    assert option.name == "GLX-001" and option.status == "ACTIVE"
    api.update_tracking_options(TENANT, category, option.tracking_option_id,
                                TrackingOption(name="GLX-001", status="ARCHIVED"))
    assert api.get_tracking_categories(TENANT).tracking_categories[0].options == []
    archived = api.get_tracking_categories(TENANT, include_archived=True)
    assert archived.tracking_categories[0].options[0].status == "ARCHIVED"


def test_xero_errors_reach_the_sdk_as_xero_sends_them(xero: XeroEmulator) -> None:
    api = sdk_for(xero)
    with pytest.raises(BadRequestException) as bad:
        api.create_invoices(TENANT, Invoices(invoices=[Invoice(
            type="ACCREC", contact=Contact(name="Hooli"),
            line_items=[LineItem(description="x", quantity=1.0, unit_amount=1.0,
                                 account_code="999")])]))
    assert bad.value.status == 400
    assert bad.value.error_data["Elements"][0]["ValidationErrors"][0]["Message"] == \
        "Account code '999' is not a valid code for this document."
    with pytest.raises(NotFoundException):
        api.get_invoice(TENANT, "00000000-0000-0000-0000-000000000000")
    with pytest.raises(ApiException) as unauthorised:
        sdk_for(xero, token="stolen").get_organisations(TENANT)
    assert unauthorised.value.status == 401
    with pytest.raises(ApiException) as forbidden:
        api.get_organisations("another-tenant")
    assert forbidden.value.status == 403
    assert api.get_organisations(TENANT).organisations[0].base_currency == CurrencyCode.USD


def test_the_minute_limit_is_a_429_the_sdk_names() -> None:
    # A POST: urllib3, under the SDK, would sleep out Retry-After on a GET or PUT.
    emulator = XeroEmulator(access_token=ACCESS, minute_limit=2)
    with emulator:
        api = sdk_for(emulator)
        api.get_organisations(TENANT)
        api.get_organisations(TENANT)
        with pytest.raises(RateLimitException) as limited:
            api.update_or_create_contacts(TENANT, Contacts(contacts=[Contact(name="Umbrella")]))
    assert limited.value.rate_limit == "minute"
    assert int(limited.value.headers["Retry-After"]) >= 1
