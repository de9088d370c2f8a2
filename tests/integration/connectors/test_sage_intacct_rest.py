"""The Sage Intacct connector over the REST API (``api`` = ``rest``) against
the emulator over HTTP: many writes in one composite call settled per
subrequest, a resend after a lost acknowledgement under both readings of
``Idempotency-Key`` (Intacct answers what it did then, or runs it again),
429s and 5xx transient, the token fetched again on a 401 and a refused one
``TARGET_AUTH``, and one company seen through both APIs. Entities,
reversals and invoice status run over both APIs in test_sage_intacct.py."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from test_sage_intacct import charge, command, customer, invoice, project, rest, sheets
from test_sage_intacct import client as xml_client

from billbridge.connectors.base import PermanentError, ResultStatus, TransientError
from billbridge.connectors.sage_intacct.emulator import IntacctEmulator
from billbridge.connectors.sage_intacct.mapping import IntacctSettings
from billbridge.connectors.sage_intacct.rest_mapping import (
    API_PATH,
    COMPOSITE,
    IntacctRestSettings,
)
from billbridge.connectors.sage_intacct.rest_target import (
    IntacctRestInvoiceSource,
    IntacctRestTarget,
)
from billbridge.connectors.sage_intacct.source import IntacctInvoiceSource
from billbridge.connectors.sage_intacct.target import IntacctTarget
from billbridge.emulation.faults import Fault, FaultRule

WRITES = f"{API_PATH}{COMPOSITE}"


@pytest.fixture
def intacct() -> Iterator[IntacctEmulator]:
    with IntacctEmulator() as emulator:
        yield emulator  # type: ignore[misc]


def target(emulator: IntacctEmulator, settings: IntacctSettings | None = None,
           **rest_settings: Any) -> IntacctRestTarget:
    return IntacctRestTarget(rest(emulator), settings,
                             IntacctRestSettings(**rest_settings))


def set_up(writer: IntacctTarget, customer_ref: str = "cust_1") -> None:
    assert {r.status for r in writer.send([customer(1)])} == {ResultStatus.APPLIED}
    assert {r.status for r in writer.send([project(2, "GLX", customer_ref)])} == \
        {ResultStatus.APPLIED}


def test_one_composite_call_carries_many_writes_and_a_refused_one_rejects_only_itself(
        intacct: IntacctEmulator) -> None:
    writer = target(intacct)
    set_up(writer)
    before = intacct.api_calls(f"rest {COMPOSITE}")
    results = {r.idempotency_key: r for r in writer.send(
        [charge(10), charge(11, worker="w-nobody"), charge(12)])}
    assert intacct.api_calls(f"rest {COMPOSITE}") == before + 1  # three subrequests
    assert results[f"{11:032x}"].status is ResultStatus.REJECTED
    assert "Invalid employee w-nobody" in (results[f"{11:032x}"].message or "")
    assert {results[f"{n:032x}"].status for n in (10, 12)} == {ResultStatus.APPLIED}
    assert sheets(intacct) == ["tc_10", "tc_12"]
    assert {e["EMPLOYEEID"] for e in intacct.all("TIMESHEETENTRY")} == {"w-alice"}


@pytest.mark.parametrize(("replay", "trust", "twins"), [
    ("replay", True, False),   # Intacct answers the key: trusting it is enough
    ("replay", False, False),  # the resend looks first and sends nothing
    ("ignore", False, False),  # Intacct runs it again: the look-up saves us
    ("ignore", True, True),    # ...and without it there is a twin: the emulator hides nothing
])
def test_a_resend_after_a_lost_acknowledgement(replay: str, trust: bool, twins: bool) -> None:
    with IntacctEmulator(idempotency_replay=replay) as intacct:
        writer = target(intacct, trust_idempotency_key=trust)  # type: ignore[arg-type]
        set_up(writer)
        intacct.faults.script([FaultRule(Fault.LOST_ACK, path_prefix=WRITES)])  # type: ignore[attr-defined]
        with pytest.raises(TransientError):
            writer.send([charge(10), charge(11)])
        assert sheets(intacct) == ["tc_10", "tc_11"]  # type: ignore[arg-type]
        results = writer.send([charge(10, attempt=2), charge(11, attempt=2), charge(12)])
        assert {r.status for r in results} == {ResultStatus.APPLIED}
        expected = ["tc_10", "tc_10", "tc_11", "tc_11", "tc_12"] if twins else \
            ["tc_10", "tc_11", "tc_12"]
        assert sheets(intacct) == expected  # type: ignore[arg-type]
        assert writer.found_by_marker == (0 if trust else 2)
        assert intacct.rest.replayed == (2 if trust and replay == "replay" else 0)  # type: ignore[attr-defined]
        if not twins:  # the ERP ids are the timesheets the first attempt made
            made = {e["TIMESHEETKEY"] for e in intacct.all("TIMESHEETENTRY")}  # type: ignore[attr-defined]
            assert {str(r.external_id) for r in results} == made


def test_a_429_of_any_body_and_a_5xx_are_transient_and_a_429_is_waited_out(
        intacct: IntacctEmulator) -> None:
    writer = target(intacct)
    set_up(writer)
    intacct.throttle_next = 2
    assert writer.send([charge(10)])[0].status is ResultStatus.APPLIED  # waited out
    intacct.throttle_next = 100
    with pytest.raises(TransientError) as limited:
        writer.send([charge(11)])
    assert limited.value.code == "HTTP_429"
    intacct.throttle_next = 0
    intacct.faults.script([FaultRule(Fault.SERVER_ERROR, status=502, path_prefix=WRITES)])
    with pytest.raises(TransientError) as failed:
        writer.send([charge(12)])
    assert failed.value.code == "HTTP_502"
    assert sheets(intacct) == ["tc_10"]


def test_an_expired_token_is_fetched_again_once_and_a_refused_one_is_target_auth(
        intacct: IntacctEmulator) -> None:
    client = rest(intacct)
    writer = IntacctRestTarget(client)
    set_up(writer)
    assert client.token.fetched == 1
    intacct.rest.expire_tokens()  # Intacct no longer knows the token: a 401
    assert writer.send([charge(10)])[0].status is ResultStatus.APPLIED
    assert client.token.fetched == 2
    with pytest.raises(PermanentError) as wrong:
        IntacctRestTarget(rest(intacct, secret="nope")).send([customer(5)])
    assert wrong.value.code == "TARGET_AUTH" and "client_secret" in str(wrong.value)
    with IntacctEmulator(token_seconds=0) as dead:  # every token refused: one renewal, then
        with pytest.raises(PermanentError) as refused:
            IntacctRestTarget(rest(dead)).send([customer(6)])  # type: ignore[arg-type]
        assert refused.value.code == "TARGET_AUTH"
        assert dead.api_calls() == 2  # type: ignore[attr-defined]


def test_one_company_through_both_apis_and_an_update_patches_the_record(
        intacct: IntacctEmulator) -> None:
    gateway = IntacctTarget(xml_client(intacct))
    writer = target(intacct)
    [made] = gateway.send([customer(1)])  # the customer over XML
    assert made.external_id == "cust_1"
    renamed = command(3, "customer.upsert", {"id": "cust_1", "name": "Client One",
                                             "currency": "USD", "billing_country": "GB"},
                      {"customer:cust_1": "cust_1"})
    assert writer.send([renamed])[0].status is ResultStatus.APPLIED  # a PATCH over REST
    [row] = intacct.all("CUSTOMER")
    assert (row["NAME"], row["DISPLAYCONTACT"]["MAILADDRESS"]["COUNTRYCODE"]) == \
        ("Client One", "GB")
    assert writer.send([project(2, "GLX", "cust_1")])[0].status is ResultStatus.APPLIED
    [over_rest] = writer.send([charge(10)])
    [over_xml] = gateway.send([charge(11)])
    both = {(p.charge, p.external_id, p.hours, p.amount) for p in writer.live_postings()}
    assert both == {(p.charge, p.external_id, p.hours, p.amount)
                    for p in gateway.live_postings()}
    assert both == {("tc_10", over_rest.external_id, Decimal("1.5"), Decimal("225.00")),
                    ("tc_11", over_xml.external_id, Decimal("1.5"), Decimal("225.00"))}


def test_a_connection_moved_between_the_apis_keeps_its_place_in_the_status_read(
        intacct: IntacctEmulator) -> None:
    clock = [datetime(2026, 4, 1, 12, 0, 0, tzinfo=UTC)]
    intacct.now = lambda: clock[0]
    gateway = xml_client(intacct)
    writer = IntacctTarget(gateway)
    set_up(writer)
    [first, _second] = writer.send([invoice(10), invoice(11)])
    [*_, last] = IntacctInvoiceSource(gateway).poll(None)
    assert last.cursor == "04/01/2026 12:00:00"
    clock[0] += timedelta(seconds=5)
    intacct.pay(str(first.external_id), Decimal("300.00"))
    over_rest = IntacctRestInvoiceSource(rest(intacct))
    pages = list(over_rest.poll(last.cursor))  # the gateway's cursor, read over REST
    assert [(e["data"]["invoice"], e["data"]["status"]) for p in pages for e in p.events
            if e["data"]["status"] == "paid"] == [("inv_GLX_10", "paid")]
    assert pages[-1].cursor == "2026-04-01T12:00:05Z"
    events = [e for p in IntacctInvoiceSource(gateway).poll(pages[-1].cursor) for e in p.events]
    assert [e["data"]["invoice"] for e in events] == ["inv_GLX_10"]  # and back again
