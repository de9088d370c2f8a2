"""The SAP S/4HANA Cloud connector against its emulator over HTTP: the CSRF
token dance (fetched once, sent with the session cookie on every change,
fetched again once when SAP refuses it), the communication arrangement's
credentials (Basic or OAuth client credentials), OData 2.0 paging either
way SAP may page, the ``$batch`` maximum either way, a refused record
refused alone, and billing documents and clearing read back as invoice
status."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from billbridge.connectors.base import (
    Connection,
    OutboundCommand,
    PermanentError,
    ResultStatus,
    TransientError,
)
from billbridge.connectors.registry import connector
from billbridge.connectors.sap_s4hana.client import SapClient
from billbridge.connectors.sap_s4hana.emulator import ROOT, SapEmulator
from billbridge.connectors.sap_s4hana.target import SapTarget
from billbridge.emulation.faults import Fault, FaultRule

BP = ("API_BUSINESS_PARTNER", "A_BusinessPartner")
MEMO = ("API_DEBIT_MEMO_REQUEST_SRV", "A_DebitMemoRequest")
CUSTOMER = {"id": "cust_1", "name": "Globex LLC", "currency": "USD", "billing_country": "US"}


@pytest.fixture
def sap() -> Iterator[SapEmulator]:
    with SapEmulator() as emulator:
        yield emulator


def basic(sap: SapEmulator, **options: Any) -> SapClient:
    return SapClient(sap.url, user=sap.user, password=sap.password, **options)


def customer(key: str, n: int, attempt: int = 1) -> OutboundCommand:
    payload = {**CUSTOMER, "id": f"cust_{n}", "name": f"Client {n}"}
    return OutboundCommand(n, "sap", "customer.upsert", key, f"cust_{n}", payload,
                           attempt=attempt)


def invoice(n: int, partner: str, amount: str = "100.00") -> OutboundCommand:
    payload = {"id": f"inv_{n}", "customer": "cust_1", "project": None, "currency": "USD",
               "lines": [{"description": "Consulting", "quantity": "1", "unit_price": amount,
                          "amount": amount}],
               "subtotal": amount, "tax": "0", "total": amount}
    return OutboundCommand(n, "sap", "invoice.create", f"inv-key-{n}", f"inv_{n}", payload,
                           refs={"customer:cust_1": partner})


def test_a_change_fetches_the_csrf_token_once_and_an_expired_one_is_fetched_again_once(
        sap: SapEmulator) -> None:
    client = basic(sap)
    target = SapTarget(client)
    target.send([customer("k1", 1)])
    target.send([customer("k2", 2)])
    assert (client.csrf.fetched, sap.csrf_fetches, sap.csrf_refused) == (1, 1, 0)
    sap.expire_csrf()
    (result,) = target.send([customer("k3", 3)])
    assert result.status is ResultStatus.APPLIED
    assert (client.csrf.fetched, sap.csrf_refused) == (2, 1)
    assert [m for m, p, s in sap.calls if s == 403] == ["POST"]
    assert len(sap.all(*BP)) == 4  # the company's own partner and three, none twice


def test_a_token_refused_again_after_a_fresh_fetch_is_transient_not_a_loop(
        sap: SapEmulator) -> None:
    client = basic(sap)
    client.csrf.ensure()
    # every token expires the moment it is used, set as `emulator run` users set it
    assert httpx.post(f"{sap.url}/_emulator/csrf", json={"expiry_rate": 1.0}).json()[
        "expiry_rate"] == 1.0
    with pytest.raises(TransientError) as refused:
        SapTarget(client).send([customer("k1", 1)])
    assert refused.value.code == "CSRF_REFUSED"
    assert sap.csrf_refused == 2 and client.csrf.fetched == 2


def test_a_changing_call_without_the_session_cookie_is_refused_even_with_a_token(
        sap: SapEmulator) -> None:
    auth = (sap.user, sap.password)
    with httpx.Client(auth=auth) as first:
        token = first.get(f"{sap.url}{ROOT}/API_BUSINESS_PARTNER/",
                          headers={"x-csrf-token": "Fetch"}).headers["x-csrf-token"]
    with httpx.Client(auth=auth) as other:  # a new session: no cookie
        refused = other.post(f"{sap.url}{ROOT}/API_BUSINESS_PARTNER/A_BusinessPartner",
                             headers={"x-csrf-token": token}, json={})
    assert (refused.status_code, refused.text) == (403, "CSRF token validation failed")


def test_oauth_client_credentials_work_and_a_wrong_password_is_one_line_naming_the_fix(
        sap: SapEmulator) -> None:
    oauth = SapClient(sap.url, client_id=sap.client_id, client_secret=sap.client_secret,
                      token_url=sap.token_url)
    assert SapTarget(oauth).send([customer("k1", 1)])[0].status is ResultStatus.APPLIED
    assert oauth.oauth is not None and oauth.oauth.fetched == 1
    wrong = SapClient(sap.url, user=sap.user, password="not-it")
    with pytest.raises(PermanentError) as refused:
        SapTarget(wrong).send([customer("k2", 2)])
    assert refused.value.code == "TARGET_AUTH"
    assert "\n" not in str(refused.value) and "HTTP 401" in str(refused.value)


@pytest.mark.parametrize(("server_page_size", "top_cap"), [(None, None), (3, None), (None, 4)],
                         ids=["client-paged", "server-paged", "top-cut-short"])
def test_every_row_is_read_whether_sap_pages_by_next_links_or_only_by_top_and_skip(
        server_page_size: int | None, top_cap: int | None) -> None:
    with SapEmulator(server_page_size=server_page_size, max_top=5, top_cap=top_cap) as sap:
        client = basic(sap, page_size=5)
        SapTarget(client).send([customer(f"k{n}", n) for n in range(12)])
        rows = client.rows(*BP, "every partner")
        assert sorted(r["OrganizationBPName1"] for r in rows) == sorted(
            ["Inlandskunde DE 1", *(f"Client {n}" for n in range(12))])


def test_a_next_link_offered_twice_stops_with_pagination_loop(sap: SapEmulator) -> None:
    client = basic(sap)
    link = f"{sap.url}{ROOT}/API_BUSINESS_PARTNER/A_BusinessPartner?$skip=1"
    looping = httpx.MockTransport(lambda request: httpx.Response(
        200, json={"d": {"results": [{"BusinessPartner": "1"}], "__next": link}}))
    client.http._client = httpx.Client(base_url=client.http.base_url, transport=looping)
    with pytest.raises(PermanentError) as stopped:
        client.rows(*BP, "partners")
    assert stopped.value.code == "PAGINATION_LOOP"


def test_a_batch_larger_than_sap_takes_is_refused_whole_with_what_to_set(
        sap: SapEmulator) -> None:
    sap.max_batch = 3
    with pytest.raises(PermanentError) as refused:
        SapTarget(basic(sap, batch_limit=10), max_batch=10).send(
            [customer(f"k{n}", n) for n in range(5)])
    assert "at most 3" in str(refused.value)
    assert len(sap.all(*BP)) == 1
    results = SapTarget(basic(sap, batch_limit=3), max_batch=3).send(
        [customer(f"k{n}", n) for n in range(5)])
    assert {r.status for r in results} == {ResultStatus.APPLIED} and len(sap.all(*BP)) == 6


def test_a_refused_record_is_refused_alone_with_sap_s_message(sap: SapEmulator) -> None:
    target = SapTarget(basic(sap))
    (partner,) = target.send([customer("k1", 1)])
    bad = OutboundCommand(9, "sap", "invoice.create", "bad", "inv_9", {
        **invoice(9, str(partner.external_id)).payload, "lines": []},
        refs={"customer:cust_1": str(partner.external_id)})
    unknown = invoice(8, "0099999999")
    results = {r.idempotency_key: r for r in target.send(
        [invoice(7, str(partner.external_id)), unknown, bad])}
    assert results["inv-key-7"].status is ResultStatus.APPLIED
    assert results["inv-key-8"].status is ResultStatus.REJECTED
    assert "Sold-to party 0099999999 does not exist" in str(results["inv-key-8"].message)
    assert results["bad"].status is ResultStatus.REJECTED and results["bad"].code == "MAPPING"
    assert [m["PurchaseOrderByCustomer"] for m in sap.all(*MEMO)] == ["inv_7"]


def test_a_resent_invoice_whose_answer_was_lost_is_found_by_its_reference(
        sap: SapEmulator) -> None:
    target = SapTarget(basic(sap, timeout=5))
    (partner,) = target.send([customer("k1", 1)])
    sap.faults.script([FaultRule(Fault.LOST_ACK, path_prefix=f"{ROOT}/{MEMO[0]}/$batch")])
    first = invoice(7, str(partner.external_id))
    with pytest.raises(TransientError) as lost:
        target.send([first])
    assert lost.value.code == "CONNECTION"
    again = OutboundCommand(7, "sap", "invoice.create", first.idempotency_key,
                            first.aggregate_key, first.payload, refs=first.refs, attempt=2)
    (result,) = target.send([again])
    (memo,) = sap.all(*MEMO)
    assert (result.status, result.external_id) == (ResultStatus.APPLIED,
                                                   memo["DebitMemoRequest"])
    assert target.found_by_reference == 1


def test_billing_documents_and_clearing_come_back_as_issued_paid_and_void(
        sap: SapEmulator) -> None:
    spec = connector("sap-s4hana")
    assert spec.target is not None and spec.source is not None
    connection = Connection("sap", "sap-s4hana", sap.url, credentials={
        "user": sap.user, "password": sap.password})
    target = spec.target(connection)
    (partner,) = target.send([customer("k1", 1)])
    target.send([invoice(n, str(partner.external_id), f"{n}00.00") for n in (1, 2)])
    memos = {m["PurchaseOrderByCustomer"]: m["DebitMemoRequest"] for m in sap.all(*MEMO)}
    source = spec.source(connection)
    assert list(source.poll(None)) == []  # nothing billed yet
    first = sap.bill(memos["inv_1"])
    second = sap.bill(memos["inv_2"])

    def statuses(cursor: str | None) -> tuple[list[tuple[str, str, str]], str | None]:
        found = []
        for page in source.poll(cursor):
            found += [(e["data"]["invoice"], e["data"]["status"], e["data"].get(
                "amount_paid", "")) for e in page.events if isinstance(e, dict)]
            cursor = page.cursor
        return sorted(found), cursor

    seen, cursor = statuses(None)
    assert seen == [("inv_1", "issued", ""), ("inv_2", "issued", "")]
    sap.now = lambda: datetime(2099, 1, 1, tzinfo=UTC)
    sap.clear(first["BillingDocument"])
    sap.cancel(second["BillingDocument"])
    seen, cursor = statuses(cursor)
    assert ("inv_1", "paid", "100.00") in seen and ("inv_2", "void", "") in seen
    assert json.loads(str(cursor))["cleared"].startswith("2099-01-01")


def test_a_429_is_waited_out_by_its_retry_after_or_a_second_without_one(
        sap: SapEmulator) -> None:
    from billbridge.engine.clock import ManualClock

    clock = ManualClock()
    client = basic(sap, clock=clock)
    client.csrf.ensure()
    # The one public report of an SAP 429 carries Retry-After: 60; nothing says every one does.
    sap.faults.script([FaultRule(Fault.RATE_LIMITED, retry_after=60),
                       FaultRule(Fault.RATE_LIMITED, retry_after=None)])
    started = clock.monotonic()
    (result,) = SapTarget(client).send([customer("k1", 1)])
    assert result.status is ResultStatus.APPLIED
    assert clock.monotonic() - started == pytest.approx(61.0, abs=0.5)
    assert sap.faults.injected[Fault.RATE_LIMITED] == 2


def test_a_cancellation_whose_answer_was_lost_is_not_sent_again_and_one_never_posted_is_refused(
        sap: SapEmulator) -> None:
    target = SapTarget(basic(sap, timeout=5))
    charge = {"id": "tc_te-1", "time_entry": "te-1", "project": "SP-0001", "worker": "w-bob",
              "work_date": "2026-03-02", "hours": "2.00", "rate": "150.00", "amount": "300.00",
              "currency": "USD", "billable": True, "config_version": 1, "source_version": 1}
    (posted,) = target.send([OutboundCommand(1, "sap", "time_charge.post", "p1", "SP-0001",
                                             charge)])
    sheets = ("API_MANAGE_WORKFORCE_TIMESHEET", "TimeSheetEntryCollection")
    assert len(sap.all(*sheets)) == 1
    refs = {"time_charge:tc_te-1": str(posted.external_id)}
    sap.faults.script([FaultRule(Fault.LOST_ACK, path_prefix=f"{ROOT}/{sheets[0]}/$batch")])
    reverse = OutboundCommand(2, "sap", "time_charge.reverse", "r1", "SP-0001",
                              {"charge": "tc_te-1"}, refs=refs)
    with pytest.raises(TransientError):
        target.send([reverse])
    assert sap.all(*sheets) == []  # the cancellation applied; its answer was lost
    writes = sap.api_calls("POST", f"{sheets[0]}/$batch")
    (again,) = target.send([OutboundCommand(2, "sap", "time_charge.reverse", "r1", "SP-0001",
                                            {"charge": "tc_te-1"}, refs=refs, attempt=2)])
    assert (again.status, again.external_id) == (ResultStatus.APPLIED, posted.external_id)
    assert sap.api_calls("POST", f"{sheets[0]}/$batch") == writes
    (never,) = target.send([OutboundCommand(3, "sap", "time_charge.reverse", "r2", "SP-0001",
                                            {"charge": "tc_te-9"})])
    assert (never.status, never.code) == (ResultStatus.REJECTED, "NOTHING_TO_REVERSE")
