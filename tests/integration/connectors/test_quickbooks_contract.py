"""The official ``python-quickbooks`` 0.9 and ``intuit-oauth`` 1.2 clients,
unchanged, against the emulator: if its paths, shapes, OAuth or rules were
wrong, Intuit's own clients would say so. The emulator serves TLS because
requests-oauthlib refuses to send a bearer token over plain HTTP. Then our
connector reads what the official client wrote, and the other way round."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from intuitlib.client import AuthClient
from quickbooks.batch import batch_create
from quickbooks.client import QuickBooks
from quickbooks.exceptions import (
    AuthorizationException,
    QuickbooksException,
    ValidationException,
)
from quickbooks.objects.base import Ref
from quickbooks.objects.customer import Customer
from quickbooks.objects.detailline import SalesItemLine, SalesItemLineDetail
from quickbooks.objects.employee import Employee
from quickbooks.objects.invoice import Invoice
from quickbooks.objects.item import Item
from quickbooks.objects.payment import Payment, PaymentLine
from quickbooks.objects.timeactivity import TimeActivity

from billbridge.connectors.base import OutboundCommand, RateLimit, ResultStatus
from billbridge.connectors.quickbooks.client import QuickBooksClient
from billbridge.connectors.quickbooks.emulator import DISCOVERY_PATH, QuickBooksEmulator
from billbridge.connectors.quickbooks.mapping import marker
from billbridge.connectors.quickbooks.source import QuickBooksSource
from billbridge.connectors.quickbooks.target import QuickBooksTarget
from billbridge.emulation.tls import self_signed

FAST = RateLimit(1000, 1, burst=1000)


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    return self_signed(Path(tmp_path_factory.mktemp("quickbooks-contract-tls")))


@pytest.fixture
def company(cert: tuple[str, str]) -> Iterator[QuickBooksEmulator]:
    emulator = QuickBooksEmulator(tls=cert)
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture
def qb(company: QuickBooksEmulator, cert: tuple[str, str],
       monkeypatch: pytest.MonkeyPatch) -> QuickBooks:
    # requests reads the CA bundle from the environment (this machine sets one):
    # point it at the emulator's certificate for the official clients' sessions.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", cert[0])
    auth = AuthClient(client_id="qbo-client-id", client_secret="qbo-client-secret",
                      redirect_uri="https://localhost/callback",
                      environment=company.url + DISCOVERY_PATH)  # a URL: its discovery document
    client = QuickBooks(auth_client=auth, refresh_token="qbo-refresh-token",
                        company_id=company.realm_id, minorversion=75, use_decimal=True)
    client.api_url_v3 = f"{company.url}/v3"
    return client


def ours(company: QuickBooksEmulator, cert: tuple[str, str]) -> QuickBooksClient:
    return QuickBooksClient(company.url, company.realm_id, access_token="qbo-access-token",
                            rate_limit=FAST, batch_limit=FAST,
                            verify=ssl.create_default_context(cafile=cert[0]))


def named(name: str, **fields: object) -> Customer:
    customer = Customer()
    customer.DisplayName = name
    for key, value in fields.items():
        setattr(customer, key, value)
    return customer


def ref(value: str) -> Ref:
    found = Ref()
    found.value = value
    return found


def test_the_token_refresh_and_customers_round_trip(company: QuickBooksEmulator,
                                                     qb: QuickBooks) -> None:
    assert company.refreshes == 1  # intuit-oauth refreshed at our token endpoint
    globex = named("Globex LLC", Notes="from the SDK").save(qb=qb)
    project = named("GLX-001 Rollout", Job=True, ParentRef=globex.to_ref()).save(qb=qb)
    fetched = Customer.get(project.Id, qb=qb)
    assert fetched.FullyQualifiedName == "Globex LLC:GLX-001 Rollout" and fetched.Job is True
    assert [c.Id for c in Customer.filter(DisplayName="Globex LLC", qb=qb)] == [globex.Id]
    with pytest.raises(QuickbooksException) as refused:
        named("globex llc").save(qb=qb)  # names are unique, whatever the case
    assert refused.value.error_code == 6240


def test_items_employees_and_time_activities(company: QuickBooksEmulator, qb: QuickBooks) -> None:
    [services] = Item.filter(Name="Services", qb=qb)
    item = Item()
    item.Name, item.Type, item.IncomeAccountRef = "Consulting", "Service", ref("1")
    assert item.save(qb=qb).Id != services.Id
    employee = Employee()
    employee.DisplayName = "w-alice"
    alice = employee.save(qb=qb)
    client = named("Initech").save(qb=qb)
    activity = TimeActivity()
    activity.NameOf, activity.EmployeeRef, activity.CustomerRef = "Employee", alice.to_ref(), \
        client.to_ref()
    activity.TxnDate, activity.Hours, activity.Minutes = "2026-03-02", 7, 30
    activity.BillableStatus, activity.HourlyRate = "Billable", Decimal("175.50")
    activity.Description = "te-1 [billbridge tc_te-1 " + "a" * 32 + "]"
    saved = activity.save(qb=qb)
    [found] = TimeActivity.filter(TxnDate="2026-03-02", qb=qb)
    assert (found.Id, found.Hours, found.Minutes, found.HourlyRate) == (saved.Id, 7, 30,
                                                                       Decimal("175.5"))
    with pytest.raises(ValidationException) as refused:  # not a filterable field
        TimeActivity.filter(Description=activity.Description, qb=qb)
    assert refused.value.error_code == 4001
    found.delete(qb=qb)
    assert TimeActivity.filter(TxnDate="2026-03-02", qb=qb) == []


def test_invoices_request_ids_payments_and_voids(company: QuickBooksEmulator,
                                                 qb: QuickBooks) -> None:
    customer = named("Hooli").save(qb=qb)

    def invoice() -> Invoice:
        line = SalesItemLine()
        line.Amount, line.Description = Decimal("1316.25"), "7.5 h at 175.50"
        line.SalesItemLineDetail = SalesItemLineDetail()
        line.SalesItemLineDetail.ItemRef = ref("2")
        line.SalesItemLineDetail.Qty = Decimal("7.5")
        line.SalesItemLineDetail.UnitPrice = Decimal("175.50")
        made = Invoice()
        made.CustomerRef, made.Line = customer.to_ref(), [line]
        made.PrivateNote = marker("inv_HOO_2026-03-31", "b" * 32)
        return made

    first = invoice().save(qb=qb, request_id="billbridge-test-1")
    again = invoice().save(qb=qb, request_id="billbridge-test-1")  # a resend: no twin
    assert first.Id == again.Id and len(Invoice.all(qb=qb)) == 1
    assert company.replays == 1
    assert (first.TotalAmt, first.Balance, first.DocNumber) == (Decimal("1316.25"),
                                                                Decimal("1316.25"), "1001")
    payment = Payment()
    payment.CustomerRef, payment.TotalAmt = customer.to_ref(), Decimal("316.25")
    paid = PaymentLine()
    paid.Amount, paid.LinkedTxn = Decimal("316.25"), [first.to_linked_txn()]
    payment.Line = [paid]
    payment.save(qb=qb)
    assert Invoice.get(first.Id, qb=qb).Balance == Decimal("1000")
    Invoice.get(first.Id, qb=qb).void(qb=qb)
    voided = Invoice.get(first.Id, qb=qb)
    assert voided.TotalAmt == 0 and voided.PrivateNote.startswith("Voided [billbridge")


def test_batch_operations_report_each_item(company: QuickBooksEmulator, qb: QuickBooks) -> None:
    answer = batch_create([named("Acme"), named("Umbrella"), named("ACME")], qb=qb)
    assert sorted(c.DisplayName for c in answer.successes) == ["Acme", "Umbrella"]
    [fault] = answer.faults
    assert fault.Error[0].code == "6240" and fault.original_object.DisplayName == "ACME"


def test_an_expired_token_is_an_authorization_error(company: QuickBooksEmulator,
                                                    qb: QuickBooks) -> None:
    company.expire_tokens()
    with pytest.raises(AuthorizationException):
        Customer.all(qb=qb)


def test_our_connector_and_the_official_client_read_each_other(
        company: QuickBooksEmulator, qb: QuickBooks, cert: tuple[str, str]) -> None:
    client = ours(company, cert)
    target = QuickBooksTarget(client, name="qbo")
    parent = named("Globex LLC").save(qb=qb)
    project = named("GLX-001", Job=True, ParentRef=parent.to_ref()).save(qb=qb)
    charge = {"id": "tc_te-9", "time_entry": "te-9", "project": "GLX-001", "worker": "w-bob",
              "work_date": "2026-03-03", "hours": "2.25", "rate": "150.00", "amount": "337.50",
              "currency": "USD", "billable": True, "config_version": 1, "source_version": 1}
    [result] = target.send([OutboundCommand(1, "qbo", "time_charge.post", "c" * 32,
                                            "project:GLX-001", charge,
                                            refs={"project:GLX-001": project.Id})])
    assert result.status is ResultStatus.APPLIED
    written = TimeActivity.get(result.external_id, qb=qb)
    assert (written.Hours, written.Minutes, written.HourlyRate) == (2, 15, Decimal("150"))
    assert written.EmployeeRef.value == Employee.filter(DisplayName="w-bob", qb=qb)[0].Id
    # An invoice written by the official client, with our marker, is read back by our source.
    line = SalesItemLine()
    line.Amount = Decimal("337.50")
    line.SalesItemLineDetail = SalesItemLineDetail()
    line.SalesItemLineDetail.ItemRef = ref("2")
    invoice = Invoice()
    invoice.CustomerRef, invoice.Line = project.to_ref(), [line]
    invoice.PrivateNote = marker("inv_GLX-001_2026-03-31", "d" * 32)
    invoice.TxnDate = date(2026, 3, 31).isoformat()
    saved = invoice.save(qb=qb)
    [page] = list(QuickBooksSource(client, name="qbo").poll(None))
    assert [e["data"] for e in page.events] == [{
        "invoice": "inv_GLX-001_2026-03-31", "erp_id": saved.Id, "status": "issued",
        "amount_paid": "0.00"}]
