"""Fyle's ``sageintacctsdk`` 1.28.1, an independent XML gateway client, run
unchanged against the Intacct emulator over HTTP: a session from
``getAPISession``, a customer created and read back (``readByQuery`` and
``query``), an AR invoice through the legacy ``create_invoice`` and found by
a filtered query, a payment applied to it through ``create_arpayment``, and
the SDK's own reading of a throttled answer.

The SDK begins at Intacct's public gateway and, like the SDK itself after
``getAPISession``, each API object posts to the URL it holds: the test opens
the session at the emulator and gives every API object the endpoint the
session answered, and nothing else."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from billbridge.connectors.sage_intacct.client import GATEWAY_PATH
from billbridge.connectors.sage_intacct.emulator import IntacctEmulator

sdk = pytest.importorskip("sageintacctsdk")
from sageintacctsdk import SageIntacctSDK  # noqa: E402
from sageintacctsdk.apis import ApiBase  # noqa: E402
from sageintacctsdk.exceptions import InternalServerError, WrongParamsError  # noqa: E402

SENDER, SENDER_PASSWORD = "billbridge", "sender-secret"
USER, COMPANY, PASSWORD = "api-user", "billbridge-co", "user-secret"


@pytest.fixture
def intacct() -> Iterator[IntacctEmulator]:
    with IntacctEmulator() as emulator:
        yield emulator  # type: ignore[misc]


def connect(intacct: IntacctEmulator, entity: str | None = None) -> SageIntacctSDK:
    base = ApiBase()
    base.set_sender_id(SENDER)
    base.set_sender_password(SENDER_PASSWORD)
    base._ApiBase__api_url = f"{intacct.url}{GATEWAY_PATH}"  # type: ignore[attr-defined]
    session = base.get_session_id(USER, COMPANY, PASSWORD, entity)
    endpoint = base._ApiBase__api_url  # type: ignore[attr-defined]
    client = SageIntacctSDK(sender_id=SENDER, sender_password=SENDER_PASSWORD, user_id=USER,
                            company_id=COMPANY, user_password=PASSWORD, session_id=session)
    for api in vars(client).values():
        if isinstance(api, ApiBase):
            api._ApiBase__api_url = endpoint  # type: ignore[attr-defined]
    return client


def test_the_sdk_opens_a_session_and_creates_and_reads_back_a_customer(
        intacct: IntacctEmulator) -> None:
    client = connect(intacct)
    created = client.customers.post({"CUSTOMERID": "C-100", "NAME": "Globex LLC",
                                     "DISPLAYCONTACT": {"PRINTAS": "Globex LLC"}})
    assert created["status"] == "success"
    assert created["data"]["customer"]["CUSTOMERID"] == "C-100"
    found = client.customers.get(field="CUSTOMERID", value="C-100")
    assert found["customer"]["NAME"] == "Globex LLC"
    assert client.customers.count(field="CUSTOMERID", value="C-100") == 1
    assert client.customers.count(field="CUSTOMERID", value="C-999") == 0
    [row] = client.customers.get_by_query(fields=["CUSTOMERID", "NAME"],
                                          and_filter=[("equalto", "CUSTOMERID", "C-100")])
    assert row == {"CUSTOMERID": "C-100", "NAME": "Globex LLC"}
    assert [c["CUSTOMERID"] for c in intacct.all("CUSTOMER")] == ["C-100"]


def test_the_sdk_creates_an_ar_invoice_with_create_invoice_and_finds_it(
        intacct: IntacctEmulator) -> None:
    client = connect(intacct)
    client.customers.post({"CUSTOMERID": "C-100", "NAME": "Globex LLC"})
    created = client.ar_invoices.post({
        "customerid": "C-100", "datecreated": {"year": "2026", "month": "03", "day": "31"},
        "invoiceno": "INV-1", "description": "March",
        "invoiceitems": {"lineitem": [
            {"glaccountno": "4000", "amount": "1400.00", "memo": "Alice 8 h"},
            {"glaccountno": "4000", "amount": "1125.00", "memo": "Bob 7.5 h"}]}})
    assert created["status"] == "success" and created["function"] == "create_invoice"
    [invoice] = intacct.all("ARINVOICE")
    assert created["key"] == invoice["RECORDNO"] and invoice["TOTALENTERED"] == "2525.00"
    [row] = client.ar_invoices.get_by_query(
        fields=["RECORDNO", "RECORDID", "TOTALENTERED", "STATE"],
        and_filter=[("equalto", "RECORDID", "INV-1"), ("equalto", "CUSTOMERID", "C-100")])
    assert row == {"RECORDNO": invoice["RECORDNO"], "RECORDID": "INV-1",
                   "TOTALENTERED": "2525.00", "STATE": "Posted"}
    paid = client.ar_payments.format_and_send_request({"create_arpayment": {
        "customerid": "C-100", "paymentamount": "1000.00",
        "arpaymentitem": [{"invoicekey": invoice["RECORDNO"], "amount": "1000.00"}]}})
    assert paid["status"] == "success" and paid["function"] == "create_arpayment"
    [payment] = client.ar_payments.get_by_query(
        fields=["RECORDNO", "CUSTOMERID", "TOTALENTERED"],
        and_filter=[("equalto", "RECORDNO", paid["key"])])
    assert payment == {"RECORDNO": paid["key"], "CUSTOMERID": "C-100",
                       "TOTALENTERED": "1000.00"}
    [invoice] = intacct.all("ARINVOICE")
    assert (invoice["STATE"], invoice["TOTALPAID"], invoice["TOTALDUE"]) == \
        ("Partially Paid", "1000.00", "1525.00")


def test_the_sdk_reads_a_refused_function_and_the_throttle_as_intacct_says_them(
        intacct: IntacctEmulator) -> None:
    client = connect(intacct, entity="US01")
    with pytest.raises(WrongParamsError) as refused:
        client.ar_invoices.post({"customerid": "NOBODY", "invoiceitems": {
            "lineitem": [{"glaccountno": "4000", "amount": "1"}]}})
    assert "Invalid customer NOBODY" in str(refused.value.response)
    intacct.throttle_next = 1
    with pytest.raises(InternalServerError, match="API rate limit exceeded"):
        client.customers.count()
