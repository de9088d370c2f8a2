"""The NetSuite connector against its emulator: TBA, external-id upserts, the
asynchronous batch and its lost acknowledgements, markers, concurrency,
reversals, the invoice poll and the reconciliation query."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from billbridge.connectors.base import (
    OutboundCommand,
    PermanentError,
    ResultStatus,
    TransientError,
)
from billbridge.connectors.netsuite.client import JobTiming, NetSuiteClient, batch_key
from billbridge.connectors.netsuite.emulator import NetSuiteEmulator
from billbridge.connectors.netsuite.mapping import marker
from billbridge.connectors.netsuite.source import NetSuiteInvoiceSource, posted_time
from billbridge.connectors.netsuite.target import NetSuiteTarget
from billbridge.connectors.netsuite.tba import TbaAuth, TbaCredentials
from billbridge.emulation.faults import Fault, FaultRule
from billbridge.engine.clock import ManualClock
from billbridge.engine.sync import load_cursor, sync

ACCOUNT = "1234567_SB1"
CREDENTIALS = TbaCredentials(ACCOUNT, "ck", "cs", "tk", "ts")
RECORD = "/services/rest/record/v1"


@pytest.fixture
def netsuite() -> Iterator[NetSuiteEmulator]:
    emulator = NetSuiteEmulator(account=ACCOUNT)
    emulator.start()
    yield emulator
    emulator.stop()


def client_of(emulator: NetSuiteEmulator, **extra: Any) -> NetSuiteClient:
    extra.setdefault("concurrency", 5)
    return NetSuiteClient(emulator.url, CREDENTIALS, clock=ManualClock(),
                          timing=JobTiming(first_wait=0.5, poll=1.0, timeout=10.0), **extra)


def command(kind: str, payload: dict[str, Any], *, key: str, refs: dict[str, str] | None = None,
            attempt: int = 1, number: int = 1) -> OutboundCommand:
    return OutboundCommand(number, "netsuite", kind, key, "project:GLX-001", payload,
                           refs=refs or {}, attempt=attempt)


def charge(n: int, *, project_ref: str, key: str | None = None, attempt: int = 1
           ) -> OutboundCommand:
    payload = {"id": f"tc_te-{n}", "time_entry": f"te-{n}", "project": "GLX-001",
               "worker": "w-alice", "work_date": f"2026-03-{1 + n:02d}", "hours": "2.50",
               "rate": "175.00", "amount": "437.50", "currency": "USD", "billable": True,
               "config_version": 1, "source_version": 1}
    return command("time_charge.post", payload, key=key or f"key{n:04d}",
                   refs={"project:GLX-001": project_ref}, attempt=attempt, number=n)


def seeded_project(client: NetSuiteClient) -> str:
    customer = client.upsert("customer", "cust_1", {"companyName": "Globex",
                                                    "subsidiary": {"id": "1"}})
    return client.upsert("job", "GLX-001", {"companyName": "Project GLX",
                                            "parent": {"id": customer}})


def test_an_upsert_by_external_id_twice_updates_the_one_record(
        netsuite: NetSuiteEmulator) -> None:
    client = client_of(netsuite)
    first = client.upsert("customer", "cust_1", {"companyName": "Globex",
                                                 "subsidiary": {"id": "1"}})
    again = client.upsert("customer", "cust_1", {"companyName": "Globex Corp",
                                                 "subsidiary": {"id": "1"}})
    assert first == again
    assert [(c["externalId"], c["companyName"]) for c in netsuite.all("customer")] == [
        ("cust_1", "Globex Corp")]


def test_a_batch_submit_whose_answer_was_lost_is_resent_as_is_and_follows_the_first_job(
        netsuite: NetSuiteEmulator) -> None:
    client = client_of(netsuite)
    project = seeded_project(client)
    netsuite.faults.script([FaultRule(Fault.LOST_ACK, path_prefix=f"{RECORD}/timeBill")])
    target = NetSuiteTarget(client)
    results = target.send([charge(n, project_ref=project) for n in range(1, 6)])
    assert {r.status for r in results} == {ResultStatus.APPLIED}
    assert len(netsuite.all("timeBill")) == 5 and len(netsuite.jobs) == 1
    submits = [c for c in netsuite.calls if c == ("PUT", f"{RECORD}/timeBill")]
    assert len(submits) == 2  # the lost one and its identical resend (IDEMPOTENCY_ERROR)


def test_a_resend_in_another_batch_upserts_instead_of_creating_a_twin(
        netsuite: NetSuiteEmulator) -> None:
    client = client_of(netsuite)
    project = seeded_project(client)
    target = NetSuiteTarget(client)
    first = target.send([charge(n, project_ref=project) for n in range(1, 5)])
    # The dispatcher regroups after a fault: the same commands, another batch.
    again = target.send([charge(n, project_ref=project, attempt=2) for n in (3, 4, 1, 2, 7)])
    ids = {r.idempotency_key: r.external_id for r in first}
    assert all(ids.get(r.idempotency_key, r.external_id) == r.external_id for r in again)
    assert len(netsuite.all("timeBill")) == 5 and len(netsuite.jobs) == 2


def test_a_refused_record_is_rejected_with_netsuites_code_and_the_rest_apply(
        netsuite: NetSuiteEmulator) -> None:
    client = client_of(netsuite)
    project = seeded_project(client)
    netsuite.reject_if = lambda record_type, body: (
        "Hours exceed the daily maximum." if body.get("tranDate") == "2026-03-03" else None)
    results = {r.idempotency_key: r for r in NetSuiteTarget(client).send(
        [charge(n, project_ref=project) for n in range(1, 5)])}
    refused = results.pop("key0002")
    assert refused.status is ResultStatus.REJECTED and refused.code == "USER_ERROR"
    assert "daily maximum" in (refused.message or "")
    assert {r.status for r in results.values()} == {ResultStatus.APPLIED}
    assert len(netsuite.all("timeBill")) == 3


def test_a_job_still_running_is_awaited_on_the_clients_clock(
        netsuite: NetSuiteEmulator) -> None:
    netsuite.job_reads_to_complete = 3
    client = client_of(netsuite)
    project = seeded_project(client)
    items = [{"employee": {"externalId": "w-alice"}, "customer": {"id": project},
              "tranDate": "2026-03-02", "hours": "1", "externalId": f"bb-{n}"} for n in range(3)]
    outcomes = client.run_batch("PUT", "timeBill", items, "externalid",
                                [f"bb-{n}" for n in range(3)], batch_key("PUT", "timeBill", ["x"]))
    assert all(o.internal_id for o in outcomes)
    job_reads = [c for c in netsuite.calls if c[1].startswith("/services/rest/async/v1/job/")]
    assert len(job_reads) == 3  # pending, pending, done; no task read: all were found


def test_marker_mode_looks_markers_up_only_on_a_resend_and_never_twins(
        netsuite: NetSuiteEmulator) -> None:
    netsuite.without_external_id = frozenset({"timeBill"})
    client = client_of(netsuite)
    project = seeded_project(client)
    target = NetSuiteTarget(client, marker_types=["timeBill"])
    before = len(netsuite.calls)
    netsuite.faults.script([FaultRule(Fault.LOST_ACK, path_prefix=f"{RECORD}/timeBill")])
    with pytest.raises(TransientError):  # a single create, its answer lost
        target.send([charge(1, project_ref=project)])
    first_calls = netsuite.calls[before:]
    assert ("POST", "/services/rest/query/v1/suiteql") not in first_calls  # no look-up
    resent = target.send([charge(1, project_ref=project, attempt=2)])
    assert resent[0].status is ResultStatus.APPLIED
    [bill] = netsuite.all("timeBill")
    assert resent[0].external_id == bill["id"] and bill["memo"] == marker("key0001", "tc_te-1")
    assert "externalId" not in bill


def test_a_resend_finds_a_time_bill_whose_memo_holds_the_key_alone(
        netsuite: NetSuiteEmulator) -> None:
    """Marker mode wrote ``billbridge:{key}`` before the memo named the charge:
    a resend of such a posting finds it rather than making a twin."""
    netsuite.without_external_id = frozenset({"timeBill"})
    client = client_of(netsuite)
    project = seeded_project(client)
    earlier = client.create("timeBill", {"employee": {"externalId": "w-alice"},
                                         "customer": {"id": project}, "tranDate": "2026-03-02",
                                         "hours": "2.50", "memo": "billbridge:key0001"})
    [resent] = NetSuiteTarget(client, marker_types=["timeBill"]).send(
        [charge(1, project_ref=project, attempt=2)])
    assert (resent.status, resent.external_id) == (ResultStatus.APPLIED, earlier)
    assert [b["id"] for b in netsuite.all("timeBill")] == [earlier]


def test_an_account_without_external_ids_refuses_them_as_netsuite_does(
        netsuite: NetSuiteEmulator) -> None:
    netsuite.without_external_id = frozenset({"timeBill"})
    client = client_of(netsuite)
    project = seeded_project(client)
    [result] = NetSuiteTarget(client).send([charge(1, project_ref=project)])
    assert result.status is ResultStatus.REJECTED and result.code == "INVALID_FLD"


def test_a_reversal_patches_the_time_bill_its_refs_name(netsuite: NetSuiteEmulator) -> None:
    client = client_of(netsuite)
    project = seeded_project(client)
    target = NetSuiteTarget(client)
    [first] = target.send([charge(1, project_ref=project)])
    [second] = target.send([charge(1, project_ref=project, key="key-v2")])
    # The dispatcher names the newest posting of the charge: the re-posted one.
    reverse = command("time_charge.reverse", {"charge": "tc_te-1", "amount": "437.50",
                                              "currency": "USD"}, key="rev2", number=9,
                      refs={"time_charge:tc_te-1": str(second.external_id)})
    [result] = target.send([reverse])
    bills = {b["id"]: b for b in netsuite.all("timeBill")}
    assert result.status is ResultStatus.APPLIED and result.external_id == second.external_id
    assert bills[str(second.external_id)]["isBillable"] is False
    assert bills[str(second.external_id)]["approvalStatus"] == {"id": "3"}
    assert bills[str(first.external_id)]["isBillable"] is True
    orphan = command("time_charge.reverse", {"charge": "tc_te-9"}, key="rev9")
    [nothing] = target.send([orphan])
    assert nothing.status is ResultStatus.REJECTED and nothing.code == "NOTHING_TO_REVERSE"


def signed(method: str, url: str, **extra: Any) -> httpx.Response:
    return httpx.request(method, url, auth=TbaAuth(CREDENTIALS), **extra)


def test_bad_signatures_wrong_realms_and_replayed_nonces_get_netsuites_401(
        netsuite: NetSuiteEmulator) -> None:
    url = f"{netsuite.url}/services/rest/system/v1/governanceLimits"
    assert signed("GET", url).status_code == 200
    wrong = TbaAuth(TbaCredentials(ACCOUNT, "ck", "not-the-secret", "tk", "ts"))
    other_realm = TbaAuth(TbaCredentials("7654321", "ck", "cs", "tk", "ts"))
    for auth in (wrong, other_realm):
        refused = httpx.get(url, auth=auth)
        assert refused.status_code == 401
        assert refused.json()["o:errorDetails"][0]["o:errorCode"] == "INVALID_LOGIN"
        assert 'error="token_rejected"' in refused.headers["www-authenticate"]
    header = TbaAuth(CREDENTIALS).authorization("GET", url)
    assert httpx.get(url, headers={"Authorization": header}).status_code == 200
    replay = httpx.get(url, headers={"Authorization": header})
    assert replay.status_code == 401  # the same nonce and timestamp again


def test_the_client_keeps_within_the_concurrency_limit_netsuite_reports() -> None:
    with NetSuiteEmulator(account=ACCOUNT, concurrency_limit=8, unallocated_limit=2,
                          latency=0.1) as netsuite:
        client = client_of(netsuite, concurrency=None, timeout=5.0)
        errors: list[Exception] = []

        def query() -> None:
            try:
                client.suiteql("SELECT id FROM customer")
            except Exception as exc:  # a failure fails the test below
                errors.append(exc)

        threads = [threading.Thread(target=query) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == [] and netsuite.max_in_flight == 2


def test_past_the_limit_netsuite_answers_429_concurrency_limit_exceeded() -> None:
    with NetSuiteEmulator(account=ACCOUNT, concurrency_limit=1) as netsuite:
        url = f"{netsuite.url}/services/rest/system/v1/governanceLimits"
        gate = netsuite.hold = threading.Event()  # the first call stays in flight until set
        slow = threading.Thread(target=signed, args=("GET", url))
        slow.start()
        while netsuite.in_flight == 0:
            threading.Event().wait(0.01)
        netsuite.hold = None
        refused = signed("GET", url)
        gate.set()
        slow.join()
        assert refused.status_code == 429
        assert refused.json()["o:errorDetails"][0]["o:errorCode"] == "CONCURRENCY_LIMIT_EXCEEDED"


def test_suiteql_outside_the_supported_shapes_gets_netsuites_search_error(
        netsuite: NetSuiteEmulator) -> None:
    client = client_of(netsuite)
    with pytest.raises(PermanentError) as refused:
        client.suiteql("SELECT c.id FROM customer c JOIN job j ON j.parent = c.id")
    assert refused.value.code == "INVALID_PARAMETER"
    assert "Invalid search query" in str(refused.value)


def invoice_command(project_ref: str, customer_ref: str) -> OutboundCommand:
    payload = {"id": "inv_GLX-001_2026-03-31", "customer": "cust_1", "project": "GLX-001",
               "currency": "USD", "lines": [
                   {"description": "Alice, 2026-03-02", "quantity": "8", "unit_price": "175.00",
                    "amount": "1400.00", "tax_code": "US-EXEMPT", "source": "tc_te-1"}],
               "subtotal": "1400.00", "tax": "0.00", "total": "1400.00", "status": "draft",
               "po_number": "PO-7", "config_version": 1}
    return command("invoice.create", payload, key="inv1",
                   refs={"project:GLX-001": project_ref, "customer:cust_1": customer_ref})


def test_the_invoice_poll_brings_payments_and_voids_back_and_resumes_from_its_cursor(
        netsuite: NetSuiteEmulator, engine: Engine) -> None:
    client = client_of(netsuite)
    project = seeded_project(client)
    customer = netsuite.all("customer")[0]["id"]
    [created] = NetSuiteTarget(client).send([invoice_command(project, customer)])
    source = NetSuiteInvoiceSource(client, name="netsuite")
    clock = ManualClock()
    first = sync(engine, source, clock)
    assert first.accepted == 1
    netsuite.pay_invoice(str(created.external_id), Decimal("400.00"))
    netsuite.pay_invoice(str(created.external_id))
    events = [e for page in source.poll(first.cursor) for e in page.events]
    latest = events[-1]
    assert latest["data"] == {"invoice": "inv_GLX-001_2026-03-31",
                              "erp_id": created.external_id, "status": "paid",
                              "amount_paid": "1400.00"}
    second = sync(engine, source, clock)
    assert second.accepted == 1  # the paid state; the open one was seen before
    with engine.connect() as conn:
        cursor = load_cursor(conn, "netsuite", "default")
    assert cursor is not None and cursor > str(first.cursor)
    netsuite.void_invoice(str(created.external_id))
    [voided] = [e for page in source.poll(cursor) for e in page.events
                if e["data"]["status"] == "void"]
    assert voided["data"]["invoice"] == "inv_GLX-001_2026-03-31"


def test_posted_time_answers_what_netsuite_holds_for_a_project_and_period(
        netsuite: NetSuiteEmulator) -> None:
    client = client_of(netsuite)
    project = seeded_project(client)
    target = NetSuiteTarget(client)
    target.send([charge(n, project_ref=project) for n in range(1, 5)])
    target.send([command("time_charge.reverse", {"charge": "tc_te-2"}, key="rev",
                         refs={"time_charge:tc_te-2": netsuite.all("timeBill")[1]["id"]})])
    posted = posted_time(client, "GLX-001", date(2026, 3, 3), date(2026, 3, 4))
    assert [(p.work_date.day, p.hours, p.amount, p.reversed) for p in posted] == [
        (3, Decimal("2.50"), Decimal("437.50"), True), (4, Decimal("2.50"), Decimal("437.50"),
                                                        False)]
    assert posted_time(client, "NOPE-1", date(2026, 3, 1), date(2026, 3, 31)) == []
