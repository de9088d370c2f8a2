"""The Sage Intacct connector against its emulator over HTTP: many
functions to a request settled one by one, a resend after a lost
acknowledgement recognised under both readings of ``uniqueid`` (Intacct
refuses the replayed controlid, or runs it again), throttling in both
spellings classified transient, and, over the XML gateway and the REST API
alike, entities as legal entities, reversals, and invoice status and
payments read back from the AR invoices."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from billbridge.connectors.base import (
    OutboundCommand,
    PermanentError,
    ResultStatus,
    TransientError,
)
from billbridge.connectors.ratelimit import RealClock
from billbridge.connectors.sage_intacct.client import GATEWAY_PATH, IntacctClient
from billbridge.connectors.sage_intacct.emulator import IntacctEmulator
from billbridge.connectors.sage_intacct.mapping import IntacctSettings
from billbridge.connectors.sage_intacct.rest import IntacctRestClient
from billbridge.connectors.sage_intacct.rest_target import (
    IntacctRestInvoiceSource,
    IntacctRestTarget,
)
from billbridge.connectors.sage_intacct.source import IntacctInvoiceSource
from billbridge.connectors.sage_intacct.target import IntacctTarget
from billbridge.emulation.faults import Fault, FaultRule

CREATE = f"{GATEWAY_PATH}/create"
BOTH_APIS = pytest.mark.parametrize("api", ["xml", "rest"])


class NoSleep(RealClock):
    def sleep(self, seconds: float) -> None:
        self.slept = getattr(self, "slept", 0.0) + seconds


@pytest.fixture
def intacct() -> Iterator[IntacctEmulator]:
    with IntacctEmulator() as emulator:
        yield emulator  # type: ignore[misc]


def client(emulator: IntacctEmulator, **kwargs: Any) -> IntacctClient:
    return IntacctClient(f"{emulator.url}{GATEWAY_PATH}", sender_id="billbridge",
                         sender_password="sender-secret", user_id="api-user",
                         company_id="billbridge-co", user_password="user-secret",
                         clock=NoSleep(), timeout=5.0, **kwargs)


def rest(emulator: IntacctEmulator, secret: str = "client-secret") -> IntacctRestClient:
    return IntacctRestClient(emulator.url, client_id="billbridge-client", client_secret=secret,
                             clock=NoSleep(), timeout=5.0)


def writer(api: str, emulator: IntacctEmulator,
           settings: IntacctSettings | None = None) -> IntacctTarget:
    """The target over the gateway (``xml``) or the REST API (``rest``)."""
    if api == "rest":
        return IntacctRestTarget(rest(emulator), settings)
    return IntacctTarget(client(emulator), settings)


def command(n: int, kind: str, payload: dict[str, Any], refs: dict[str, str] | None = None,
            attempt: int = 1) -> OutboundCommand:
    return OutboundCommand(n, "sage-intacct", kind, f"{n:032x}", f"agg-{n}", payload,
                           refs=refs or {}, attempt=attempt)


def customer(n: int, legal_entity: str | None = None) -> OutboundCommand:
    payload = {"id": f"cust_{n}", "name": f"Client {n}", "currency": "USD",
               "billing_country": "US", "tax_id": f"T-{n}"}
    if legal_entity:
        payload["legal_entity"] = legal_entity
    return command(n, "customer.upsert", payload)


def project(n: int, code: str, customer_ref: str) -> OutboundCommand:
    return command(n, "project.upsert", {"code": code, "name": code, "status": "active",
                                         "customer": "cust_1"},
                   {"customer:cust_1": customer_ref})


def charge(n: int, worker: str = "w-alice", project_ref: str = "GLX", attempt: int = 1,
           hours: str = "1.5") -> OutboundCommand:
    amount = str((Decimal(hours) * 150).quantize(Decimal("0.01")))
    return command(n, "time_charge.post", {
        "id": f"tc_{n}", "time_entry": f"te_{n}", "project": "GLX", "worker": worker,
        "work_date": "2026-03-02", "hours": hours, "rate": "150", "amount": amount,
        "currency": "USD", "billable": True, "config_version": 1, "source_version": 1},
        {"project:GLX": project_ref}, attempt)


def invoice(n: int, customer_ref: str = "cust_1") -> OutboundCommand:
    return command(n, "invoice.create", {
        "id": f"inv_GLX_{n}", "customer": "cust_1", "project": "GLX", "currency": "USD",
        "lines": [{"description": "Development", "quantity": "2", "unit_price": "150",
                   "amount": "300.00"}], "subtotal": "300.00", "tax": "0", "total": "300.00"},
        {"customer:cust_1": customer_ref})


def set_up(target: IntacctTarget, customer_ref: str = "cust_1") -> None:
    assert {r.status for r in target.send([customer(1)])} == {ResultStatus.APPLIED}
    assert {r.status for r in target.send([project(2, "GLX", customer_ref)])} == \
        {ResultStatus.APPLIED}


def sheets(emulator: IntacctEmulator) -> list[str]:
    return sorted(e["DESCRIPTION"].split()[1] for e in emulator.all("TIMESHEETENTRY"))


def test_one_request_carries_many_functions_and_a_refused_one_rejects_only_its_record(
        intacct: IntacctEmulator) -> None:
    target = IntacctTarget(client(intacct))
    set_up(target)
    before = intacct.api_calls("create")
    results = {r.idempotency_key: r for r in target.send(
        [charge(10), charge(11, worker="w-nobody"), charge(12)])}
    assert intacct.api_calls("create") == before + 1  # one request, three functions
    assert results[f"{11:032x}"].status is ResultStatus.REJECTED
    assert "Invalid employee w-nobody" in (results[f"{11:032x}"].message or "")
    assert {results[f"{n:032x}"].status for n in (10, 12)} == {ResultStatus.APPLIED}
    assert sheets(intacct) == ["tc_10", "tc_12"]


@pytest.mark.parametrize("lookup", [False, True], ids=["refusal-looked-up", "resend-looks-first"])
def test_a_resend_after_a_lost_acknowledgement_is_refused_by_uniqueid_and_found(
        intacct: IntacctEmulator, lookup: bool) -> None:
    target = IntacctTarget(client(intacct), IntacctSettings(resend_lookup=lookup))
    set_up(target)
    intacct.faults.script([FaultRule(Fault.LOST_ACK, path_prefix=CREATE)])
    with pytest.raises(TransientError):
        target.send([charge(10), charge(11)])
    assert sheets(intacct) == ["tc_10", "tc_11"]  # applied, unanswered
    results = target.send([charge(10, attempt=2), charge(11, attempt=2), charge(12)])
    assert {r.status for r in results} == {ResultStatus.APPLIED}
    assert sheets(intacct) == ["tc_10", "tc_11", "tc_12"]
    assert target.found_by_marker == 2
    refused = intacct.functions["create"] - 5  # customer, project, 2 lost, and tc_12
    assert refused == (0 if lookup else 2)


def test_where_intacct_runs_a_replayed_controlid_again_the_resend_looks_first() -> None:
    with IntacctEmulator(uniqueid_replay="ignore") as intacct:
        target = IntacctTarget(client(intacct))  # type: ignore[arg-type]
        set_up(target)
        intacct.faults.script([FaultRule(Fault.LOST_ACK, path_prefix=CREATE)])  # type: ignore[attr-defined]
        with pytest.raises(TransientError):
            target.send([charge(10)])
        assert target.send([charge(10, attempt=2)])[0].status is ResultStatus.APPLIED
        assert sheets(intacct) == ["tc_10"]  # type: ignore[arg-type]
        # The emulator itself does not deduplicate: without the look-up, a twin.
        blind = IntacctTarget(client(intacct), IntacctSettings(resend_lookup=False))  # type: ignore[arg-type]
        assert blind.send([charge(10, attempt=3)])[0].status is ResultStatus.APPLIED
        assert sheets(intacct) == ["tc_10", "tc_10"]  # type: ignore[arg-type]


def test_a_customer_created_before_is_found_by_its_id_not_made_twice(
        intacct: IntacctEmulator) -> None:
    target = IntacctTarget(client(intacct, uniqueid=False), IntacctSettings(resend_lookup=False))
    intacct.faults.script([FaultRule(Fault.LOST_ACK, path_prefix=CREATE)])
    with pytest.raises(TransientError):
        target.send([customer(1)])
    [result] = target.send([customer(1)])
    assert (result.status, result.external_id) == (ResultStatus.APPLIED, "cust_1")
    assert [c["CUSTOMERID"] for c in intacct.all("CUSTOMER")] == ["cust_1"]


@pytest.mark.parametrize("status", [200, 429], ids=["xml-in-200", "http-429"])
def test_the_rate_limit_answer_in_either_spelling_is_transient(status: int) -> None:
    with IntacctEmulator(throttle_status=status) as intacct:
        sdk = client(intacct, max_throttled=2)  # type: ignore[arg-type]
        target = IntacctTarget(sdk)
        set_up(target)
        intacct.throttle_next = 2  # type: ignore[attr-defined]
        assert target.send([charge(10)])[0].status is ResultStatus.APPLIED  # waited out
        intacct.throttle_next = 10  # type: ignore[attr-defined]
        with pytest.raises(TransientError):
            target.send([charge(11)])
        assert sheets(intacct) == ["tc_10"]  # type: ignore[arg-type]


def test_a_wrong_sender_is_a_configuration_fault_and_an_expired_session_is_reopened(
        intacct: IntacctEmulator) -> None:
    wrong = IntacctClient(f"{intacct.url}{GATEWAY_PATH}", sender_id="billbridge",
                          sender_password="nope", user_id="api-user",
                          company_id="billbridge-co", user_password="user-secret")
    with pytest.raises(PermanentError) as refused:
        IntacctTarget(wrong).send([customer(1)])
    assert refused.value.code == "TARGET_AUTH"
    sdk = client(intacct)
    target = IntacctTarget(sdk)
    set_up(target)
    intacct.sessions.clear()  # Intacct forgets the session
    assert target.send([charge(10)])[0].status is ResultStatus.APPLIED
    assert sdk.sessions_opened == 2


@BOTH_APIS
def test_legal_entities_are_intacct_entities_and_what_hangs_off_a_customer_follows_it(
        intacct: IntacctEmulator, api: str) -> None:
    settings = IntacctSettings(entities={"GB01": "GB01", "US01": "US01"})
    target = writer(api, intacct, settings)
    [made] = target.send([customer(1, legal_entity="GB01")])
    assert made.external_id == "cust_1@GB01"
    [proj] = target.send([project(2, "GLX", "cust_1@GB01")])
    assert proj.external_id == "GLX@GB01"
    [posted] = target.send([charge(10, project_ref="GLX@GB01")])
    [billed] = target.send([invoice(11, "cust_1@GB01")])
    assert {r.external_id.rpartition("@")[2] for r in (posted, billed)} == {"GB01"}
    owners = {obj: {r["MEGAENTITYID"] for r in intacct.all(obj)}
              for obj in ("CUSTOMER", "PROJECT", "TIMESHEET", "ARINVOICE")}
    assert owners == {obj: {"GB01"} for obj in owners}
    # A US entity session does not see GB's customer: an invoice there is refused.
    [refused] = target.send([invoice(12, "cust_1@US01")])
    assert refused.status is ResultStatus.REJECTED and "Invalid customer" in str(refused.message)
    [live] = target.live_postings()
    assert (live.charge, live.external_id.rpartition("@")[2]) == ("tc_10", "GB01")


@BOTH_APIS
def test_payments_are_read_back_as_partly_paid_then_paid_and_ties_are_read_again(
        intacct: IntacctEmulator, api: str) -> None:
    clock = [datetime(2026, 4, 1, 12, 0, 0, tzinfo=UTC)]
    intacct.now = lambda: clock[0]
    target = writer(api, intacct)
    set_up(target)
    [first, second] = target.send([invoice(10), invoice(11)])
    source = IntacctRestInvoiceSource(target.client, page_size=1) if api == "rest" else \
        IntacctInvoiceSource(target.client, page_size=1)
    pages = list(source.poll(None))
    assert [e["data"]["status"] for p in pages for e in p.events] == ["issued", "issued"]
    cursor = pages[-1].cursor
    intacct.pay(str(first.external_id), Decimal("100.00"))  # the same second: a tie
    events = [e for p in source.poll(cursor) for e in p.events]
    assert {(e["data"]["invoice"], e["data"]["status"], e["data"]["amount_paid"])
            for e in events} >= {("inv_GLX_10", "issued", "100.00")}
    clock[0] += timedelta(seconds=5)
    intacct.pay(str(first.external_id), Decimal("200.00"))
    later = [e for p in source.poll(cursor) for e in p.events]
    assert ("inv_GLX_10", "paid", "300.00", str(first.external_id)) in {
        (e["data"]["invoice"], e["data"]["status"], e["data"]["amount_paid"],
         e["data"]["erp_id"]) for e in later}
    assert second.external_id not in {e["data"]["erp_id"] for e in later
                                      if e["data"]["status"] == "paid"}


@BOTH_APIS
def test_a_reversal_is_a_negative_timesheet_and_the_posting_leaves_the_live_ledger(
        intacct: IntacctEmulator, api: str) -> None:
    target = writer(api, intacct)
    set_up(target)
    [posted] = target.send([charge(10), ])
    assert [p.charge for p in target.live_postings()] == ["tc_10"]
    [undone] = target.send([command(11, "time_charge.reverse", {
        "charge": "tc_10", "amount": "225.00", "currency": "USD"},
        {"time_charge:tc_10": str(posted.external_id)})])
    assert undone.status is ResultStatus.APPLIED
    assert target.live_postings() == []
    assert sorted(Decimal(e["QTY"]) for e in intacct.all("TIMESHEETENTRY")) == \
        [Decimal("-1.5"), Decimal("1.5")]


def test_a_batch_across_entities_keeps_what_one_entity_applied_when_the_next_fails(
        intacct: IntacctEmulator) -> None:
    target = IntacctTarget(client(intacct), IntacctSettings(entities={"GB01": "GB01",
                                                                      "US01": "US01"}))
    intacct.faults.script(["ok", "ok", "ok", FaultRule(Fault.SERVER_ERROR, path_prefix=CREATE)])
    results = {r.idempotency_key: r for r in target.send([customer(1, "GB01"),
                                                          customer(2, "US01")])}
    assert results[f"{1:032x}"].status is ResultStatus.APPLIED
    assert results[f"{2:032x}"].status is ResultStatus.RETRY
    assert results[f"{2:032x}"].code == "HTTP_503"
    assert [(c["CUSTOMERID"], c["MEGAENTITYID"]) for c in intacct.all("CUSTOMER")] == \
        [("cust_1", "GB01")]
