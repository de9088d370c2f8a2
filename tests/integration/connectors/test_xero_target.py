"""The Xero target and source against the emulator over real HTTP: per-record
results, the marker look-up that makes a resend after a lost acknowledgement
find its record, Xero's own uniqueness rules, reversals, and invoice status
and payments polled back into the hub."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, select
from xero_story import BILLING_RUN, TAXED, won

from billbridge.connectors.base import (
    Malformed,
    OutboundCommand,
    PermanentError,
    ResultStatus,
    TransientError,
)
from billbridge.connectors.xero.client import XeroClient
from billbridge.connectors.xero.emulator import API, DEFAULT_TENANT, XeroEmulator
from billbridge.connectors.xero.mapping import XeroSettings
from billbridge.connectors.xero.source import XeroInvoiceSource
from billbridge.connectors.xero.target import XeroTarget
from billbridge.emulation.faults import Fault, FaultRule
from billbridge.emulation.recording import RecordingTarget
from billbridge.engine.clock import ManualClock
from billbridge.engine.hub import Hub, HubSettings
from billbridge.engine.sync import sync
from billbridge.store.tables import records
from conftest import time_entry

SETTINGS = XeroSettings(tax_types={"US-EXEMPT": "NONE", "VAT20": "OUTPUT2"})
JOURNALS = f"{API}/ManualJournals"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 4, 1, tzinfo=UTC))


@pytest.fixture
def xero(clock: ManualClock) -> Iterator[XeroEmulator]:
    emulator = XeroEmulator(clock=clock.monotonic)
    with emulator:
        yield emulator


@pytest.fixture
def client(xero: XeroEmulator, clock: ManualClock) -> XeroClient:
    return XeroClient(f"{xero.url}{API}", tenant_id=DEFAULT_TENANT,
                      access_token="xero-access-token", clock=clock, timeout=2.0)


@pytest.fixture
def target(client: XeroClient, clock: ManualClock) -> XeroTarget:
    return XeroTarget(client, SETTINGS, today=lambda: clock.now().date())


def command(n: int, kind: str, payload: Mapping[str, Any], *, attempt: int = 1,
            refs: Mapping[str, str] | None = None) -> OutboundCommand:
    return OutboundCommand(n, "xero", kind, f"{n:032x}", "project:P-1", payload,
                           refs=refs or {}, attempt=attempt)


def charge(n: int, **overrides: Any) -> dict[str, Any]:
    return {"id": f"tc_te-{n}", "time_entry": f"te-{n}", "project": "P-1", "worker": "w-alice",
            "work_date": "2026-03-02", "hours": "2.00", "rate": "150.00", "amount": "300.00",
            "currency": "USD", "billable": True, "tax_code": None, "config_version": 1,
            "source_version": 1, **overrides}


def customer(n: int = 1, name: str = "Globex LLC") -> dict[str, Any]:
    return {"id": f"cust_hubspot_{n}", "name": name, "currency": "USD",
            "billing_country": "US", "tax_id": None}


def invoice(contact: str, number: str = "inv_P-1_2026-03-31",
            tax_code: str = "VAT20") -> tuple[dict[str, Any], dict[str, str]]:
    payload = {"id": number, "customer": "cust_hubspot_1", "project": "P-1",
               "currency": "USD", "subtotal": "300.00", "tax": "60.00", "total": "360.00",
               "lines": [{"description": "te-1 2 h", "quantity": "2.00",
                          "unit_price": "150.00", "amount": "300.00", "tax_code": tax_code,
                          "source": "tc_te-1"}]}
    return payload, {"customer:cust_hubspot_1": contact}


def by_key(results: list[Any]) -> dict[str, Any]:
    return {r.idempotency_key: r for r in results}


@pytest.fixture
def project(target: XeroTarget) -> None:
    [made] = target.send([command(900, "project.upsert", {"code": "P-1", "name": "P",
                                                          "status": "active"})])
    assert made.status is ResultStatus.APPLIED


def test_a_resend_after_a_lost_ack_finds_its_journal_in_any_batch(
        target: XeroTarget, xero: XeroEmulator, project: None) -> None:
    xero.faults.script([FaultRule(Fault.LOST_ACK, path_prefix=JOURNALS)])
    with pytest.raises(TransientError):
        target.send([command(1, "time_charge.post", charge(1)),
                     command(2, "time_charge.post", charge(2))])
    applied = {j["Narration"].split()[1].rstrip(":"): j["ManualJournalID"]
               for j in xero.journals()}
    assert sorted(applied) == ["tc_te-1", "tc_te-2"]  # Xero booked them, we never heard
    # The dispatcher resends each with its own backoff: different batches.
    results = by_key(target.send([command(2, "time_charge.post", charge(2), attempt=2),
                                  command(3, "time_charge.post", charge(3))]))
    results |= by_key(target.send([command(1, "time_charge.post", charge(1), attempt=2)]))
    assert results[f"{1:032x}"].external_id == applied["tc_te-1"]
    assert results[f"{2:032x}"].external_id == applied["tc_te-2"]
    assert len(xero.journals()) == 3 and target.found_by_marker == 2


def test_without_the_look_up_xero_would_book_a_twin_and_only_an_identical_request_is_replayed(
        target: XeroTarget, xero: XeroEmulator, project: None) -> None:
    first = [command(1, "time_charge.post", charge(1)), command(2, "time_charge.post", charge(2))]
    target.send(first)
    target.send(first)  # the same commands, the same Idempotency-Key: Xero's first answer
    assert len(xero.journals()) == 2 and xero.idempotent_replays == 1
    target.send([command(1, "time_charge.post", charge(1))])  # regrouped, as a first attempt
    assert len(xero.journals()) == 3, "the emulator must book a resend Xero would book"


def test_refusals_are_per_record_and_the_rest_of_the_call_applies(
        client: XeroClient, xero: XeroEmulator, project: None, clock: ManualClock) -> None:
    target = XeroTarget(client, XeroSettings(labour_cost_account="9999"))
    results = by_key(target.send([
        command(1, "time_charge.post", charge(1)),
        command(2, "time_charge.post", charge(2, billable=False)),
        command(3, "time_charge.post", charge(3, currency="EUR")),
        command(4, "time_charge.post", charge(4, amount="300.0000000000000001"))]))
    assert results[f"{1:032x}"].status is ResultStatus.APPLIED
    refused = results[f"{2:032x}"]
    assert (refused.status, refused.code) == (ResultStatus.REJECTED, "ValidationException")
    assert refused.message == "Account code '9999' is not a valid code for this document."
    assert results[f"{3:032x}"].code == "CURRENCY_NOT_BASE"
    assert "without rounding" in str(results[f"{4:032x}"].message)
    assert xero.api_calls("PUT", JOURNALS) == 1


def test_a_contact_name_taken_by_another_customer_is_refused_not_adopted(
        target: XeroTarget, xero: XeroEmulator) -> None:
    target.send([command(1, "customer.upsert", customer(1))])
    [clash] = target.send([command(2, "customer.upsert", customer(2, "GLOBEX LLC"))])
    assert clash.status is ResultStatus.REJECTED
    assert "must be unique across all active contacts" in str(clash.message)
    assert [c["ContactNumber"] for c in xero.contacts()] == ["cust_hubspot_1"]


def test_a_resent_contact_and_invoice_are_found_by_their_numbers(
        target: XeroTarget, xero: XeroEmulator, project: None) -> None:
    xero.faults.script([FaultRule(Fault.LOST_ACK, path_prefix=f"{API}/Contacts")])
    with pytest.raises(TransientError):
        target.send([command(1, "customer.upsert", customer())])
    [contact] = target.send([command(1, "customer.upsert", customer(), attempt=2)])
    assert contact.external_id == xero.contacts()[0]["ContactID"]
    payload, refs = invoice(str(contact.external_id))
    xero.faults.script([FaultRule(Fault.LOST_ACK, path_prefix=f"{API}/Invoices")])
    with pytest.raises(TransientError):
        target.send([command(2, "invoice.create", payload, refs=refs)])
    [found] = target.send([command(2, "invoice.create", payload, refs=refs, attempt=3)])
    [made] = xero.invoices()
    assert found.external_id == made["InvoiceID"] and made["Total"] == 360.0
    # A different command for a number Xero already has is Xero's uniqueness refusal.
    [twin] = target.send([command(3, "invoice.create", payload, refs=refs)])
    assert (twin.status, twin.message) == (ResultStatus.REJECTED, "Invoice # must be unique.")


def test_invoices_that_cannot_be_mapped_are_refused_without_a_call(
        target: XeroTarget, xero: XeroEmulator) -> None:
    payload, refs = invoice("contact-1", tax_code="ZERO")
    results = by_key(target.send([command(1, "invoice.create", payload, refs=refs),
                                  command(2, "invoice.create", invoice("x")[0])]))
    assert results[f"{1:032x}"].code == "UNMAPPED_TAX_CODE"
    assert results[f"{2:032x}"].code == "CUSTOMER_NOT_IN_XERO"
    assert xero.calls == []


def test_a_failure_after_a_write_is_answered_per_record_not_raised(
        target: XeroTarget, xero: XeroEmulator) -> None:
    xero.faults.script([FaultRule(Fault.SERVER_ERROR, path_prefix=f"{API}/Invoices")])
    payload, refs = invoice("not-yet-known")
    results = by_key(target.send([command(1, "customer.upsert", customer()),
                                  command(2, "invoice.create", payload, refs=refs)]))
    assert results[f"{1:032x}"].status is ResultStatus.APPLIED
    assert results[f"{2:032x}"].status is ResultStatus.RETRY
    # Nothing written yet when the first call fails: the whole send raises.
    xero.faults.script([FaultRule(Fault.SERVER_ERROR, path_prefix=f"{API}/Contacts")])
    with pytest.raises(TransientError):
        target.send([command(3, "customer.upsert", customer(3, "Initech"))])


def test_projects_are_options_found_by_code_and_archived_when_closed(
        target: XeroTarget, xero: XeroEmulator) -> None:
    def upsert(n: int, status: str) -> Any:
        [result] = target.send([command(n, "project.upsert", {"code": "P-1", "name": "P",
                                                              "status": status})])
        return result
    made = upsert(1, "active")
    writes = xero.api_calls("PUT") + xero.api_calls("POST")
    assert upsert(2, "on_hold").external_id == made.external_id  # nothing to change
    assert xero.api_calls("PUT") + xero.api_calls("POST") == writes
    assert upsert(3, "closed").external_id == made.external_id
    assert xero.tracking_options() == [{"TrackingOptionID": made.external_id, "Name": "P-1",
                                        "Status": "ARCHIVED"}]
    assert upsert(4, "active").status is ResultStatus.APPLIED
    assert xero.tracking_options()[0]["Status"] == "ACTIVE"


def test_a_third_tracking_category_is_a_clear_configuration_error(
        client: XeroClient, xero: XeroEmulator) -> None:
    for name in ("Region", "Department"):
        xero.org.save_category({"Name": name})
    target = XeroTarget(client, XeroSettings(tracking_category="Project"))
    with pytest.raises(PermanentError, match=r"tracking category 'Project'.*2 active"):
        target.send([command(1, "project.upsert", {"code": "P-1", "name": "P",
                                                   "status": "active"})])


def test_a_reversal_books_the_opposite_journal_on_the_original_date(
        target: XeroTarget, xero: XeroEmulator, project: None) -> None:
    [posted] = target.send([command(1, "time_charge.post", charge(1))])
    reverse = {"charge": "tc_te-1", "amount": "300.00", "currency": "USD"}
    [reversed_] = target.send([command(2, "time_charge.reverse", reverse,
                                       refs={"time_charge:tc_te-1": str(posted.external_id)})])
    assert reversed_.status is ResultStatus.APPLIED
    original, undo = xero.journals()
    assert undo["Date"] == original["Date"]
    net: dict[str, Decimal] = {}
    for line in original["JournalLines"] + undo["JournalLines"]:
        net[line["AccountCode"]] = net.get(line["AccountCode"], Decimal(0)) + \
            Decimal(str(line["LineAmount"]))
    assert net == {"1210": 0, "200": 0}
    [orphan] = target.send([command(3, "time_charge.reverse", reverse)])
    assert (orphan.status, orphan.code) == (ResultStatus.REJECTED, "NOTHING_TO_REVERSE")


# -- reading status and payments back ------------------------------------------------

def made_invoices(target: XeroTarget, xero: XeroEmulator, count: int) -> list[str]:
    [contact] = target.send([command(99, "customer.upsert", customer())])
    ids = []
    for n in range(count):
        payload, refs = invoice(str(contact.external_id), number=f"inv_P-{n}_2026-03-31")
        payload["project"] = None
        [made] = target.send([command(100 + n, "invoice.create", payload, refs=refs)])
        ids.append(str(made.external_id))
    return ids


def events_of(source: XeroInvoiceSource, cursor: str | None = None
              ) -> tuple[list[Any], str | None]:
    found: list[Any] = []
    for page in source.poll(cursor):
        found += page.events
        cursor = page.cursor
    return found, cursor


def test_status_changes_and_payments_are_polled_as_canonical_events(
        target: XeroTarget, xero: XeroEmulator, client: XeroClient) -> None:
    draft, issued, paid, voided = made_invoices(target, xero, 4)
    for invoice_id in (issued, paid, voided):
        xero.authorise(invoice_id)
    xero.pay(paid, Decimal("360.00"))
    xero.org.save_invoice({"InvoiceID": voided, "Status": "VOIDED"}, None, update=True)
    xero.org.save_invoice({"Type": "ACCREC", "Contact": {"Name": "Walk-in"},
                           "Status": "AUTHORISED", "LineItems": [
                               {"Description": "cash sale", "UnitAmount": "10",
                                "AccountCode": "200"}]}, None, update=False)  # not ours
    events, cursor = events_of(XeroInvoiceSource(client, page_size=2))
    states = {(e["data"]["erp_id"], e["data"]["status"], e["data"]["amount_paid"])
              for e in events}
    assert states == {(issued, "issued", "0.00"), (paid, "paid", "360.00"),
                      (voided, "void", "0.00")}
    assert all(e["data"]["invoice"].startswith("inv_P-") for e in events)
    again, _ = events_of(XeroInvoiceSource(client), cursor)
    assert {e["id"] for e in again} <= {e["id"] for e in events}  # only the boundary again
    assert draft not in {e["data"]["erp_id"] for e in events}


def test_a_deleted_payment_reopens_its_invoice_through_the_payments_stream(
        target: XeroTarget, xero: XeroEmulator, client: XeroClient) -> None:
    [invoice_id] = made_invoices(target, xero, 1)
    xero.authorise(invoice_id)
    payment = xero.pay(invoice_id, Decimal("360.00"))
    _, cursor = events_of(XeroInvoiceSource(client))
    with xero.lock:
        xero.org.delete_payment(payment)
    events, _ = events_of(XeroInvoiceSource(client), cursor)
    assert ("issued", "0.00") in {(e["data"]["status"], e["data"]["amount_paid"])
                                  for e in events}


def test_an_unreadable_invoice_is_malformed_and_the_poll_goes_on(
        target: XeroTarget, xero: XeroEmulator, client: XeroClient) -> None:
    broken, fine = made_invoices(target, xero, 2)
    xero.authorise(fine)
    with xero.lock:
        xero.org.invoices[broken].update({"Status": "ON_HOLD",
                                          "UpdatedDateUTC": xero.org.stamp()})
    events, _ = events_of(XeroInvoiceSource(client))
    malformed = [e for e in events if isinstance(e, Malformed)]
    assert len(malformed) == 1 and "unknown Status 'ON_HOLD'" in malformed[0].reason
    assert malformed[0].raw["InvoiceID"] == broken
    assert any(isinstance(e, dict) and e["data"]["erp_id"] == fine for e in events)


class RepeatingClient:
    """A Xero that ignores ``page``: always the same full page."""

    def records(self, *_args: Any, **_kwargs: Any) -> list[dict[str, Any]]:
        return [{"InvoiceID": f"i-{n}", "Status": "DRAFT",
                 "UpdatedDateUTC": "/Date(1775044800000+0000)/"} for n in range(2)]


def test_a_page_offered_twice_stops_the_poll_instead_of_looping() -> None:
    source = XeroInvoiceSource(RepeatingClient(), page_size=2)  # type: ignore[arg-type]
    with pytest.raises(PermanentError) as stopped:
        events_of(source)
    assert stopped.value.code == "PAGINATION_LOOP"


def test_a_payment_in_xero_reaches_the_hub_and_is_written_back_to_the_crm(
        engine: Engine, xero: XeroEmulator, client: XeroClient, clock: ManualClock) -> None:
    crm = RecordingTarget("crm")
    target = XeroTarget(client, XeroSettings(tax_types={"US-EXEMPT": "NONE"}),
                        today=lambda: clock.now().date())
    hub = Hub(engine, {"xero": target, "crm": crm}, clock=clock,
              settings=HubSettings(routes={"erp": "xero", "crm": "crm"}))
    hub.activate_config(TAXED)
    hub.ingest([won(0)], source="hubspot")
    hub.ingest([time_entry("te-1", project="P-0"), time_entry("te-2", project="P-0")],
               source="harvest")
    hub.run_until_idle()
    hub.ingest([BILLING_RUN], source="operator")
    hub.run_until_idle()
    [made] = xero.invoices()
    xero.authorise(made["InvoiceID"])
    xero.pay(made["InvoiceID"], Decimal(str(made["Total"])))
    result = sync(engine, XeroInvoiceSource(client, name="xero"), clock)
    assert result.accepted >= 1 and result.malformed == 0
    hub.run_until_idle()
    with engine.connect() as conn:
        status = conn.execute(select(records.c.status).where(
            records.c.kind == "invoice", records.c.id == "inv_P-0_2026-03-31")).scalar()
    assert status == "paid"
    written = [e["payload"]["fields"] for e in crm.effects if e["kind"] == "crm.writeback"]
    assert {"invoice": "inv_P-0_2026-03-31", "invoice_status": "paid"}.items() <= \
        written[-1].items()
