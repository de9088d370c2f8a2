"""The QuickBooks connector against its emulator over real HTTP: each command
kind, QuickBooks' own refusals (names, SyncTokens, references), resends that
find what an earlier attempt wrote, the client's OAuth, limits and request ids,
and the invoice-status source."""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any

import httpx
import pytest

from billbridge.connectors.base import (
    Malformed,
    OutboundCommand,
    PermanentError,
    RateLimit,
    RecordResult,
    ResultStatus,
    TransientError,
)
from billbridge.connectors.quickbooks.client import QuickBooksClient
from billbridge.connectors.quickbooks.directory import Directory
from billbridge.connectors.quickbooks.emulator import DISCOVERY_PATH, QuickBooksEmulator
from billbridge.connectors.quickbooks.mapping import marker
from billbridge.connectors.quickbooks.source import QuickBooksSource
from billbridge.connectors.quickbooks.target import QuickBooksTarget
from billbridge.emulation import Fault, FaultRule
from billbridge.engine.clock import ManualClock

FAST = RateLimit(10_000, 1, burst=10_000)
KEYS = (f"{n:032x}" for n in itertools.count(1))


@pytest.fixture
def qbo() -> Iterator[QuickBooksEmulator]:
    emulator = QuickBooksEmulator()
    emulator.start()
    yield emulator
    emulator.stop()


def client_of(qbo: QuickBooksEmulator, **kwargs: Any) -> QuickBooksClient:
    kwargs.setdefault("access_token", "qbo-access-token")
    kwargs.setdefault("rate_limit", FAST)
    kwargs.setdefault("batch_limit", FAST)
    kwargs.setdefault("token_url", qbo.token_url)
    return QuickBooksClient(qbo.url, qbo.realm_id, timeout=0.4, **kwargs)


@pytest.fixture
def target(qbo: QuickBooksEmulator) -> QuickBooksTarget:
    client = client_of(qbo)
    return QuickBooksTarget(client, name="qbo", tax_codes={"US-EXEMPT": "NON"},
                            directory=Directory(client, income_account="1"))


def command(kind: str, payload: Mapping[str, Any], refs: Mapping[str, str] | None = None,
            attempt: int = 1, key: str | None = None) -> OutboundCommand:
    return OutboundCommand(1, "qbo", kind, key or next(KEYS), "agg", dict(payload),
                           refs=dict(refs or {}), attempt=attempt)


def again(sent: OutboundCommand, **refs: str) -> OutboundCommand:
    """The same command resent by the dispatcher after a fault."""
    return OutboundCommand(sent.id, sent.target, sent.kind, sent.idempotency_key,
                           sent.aggregate_key, sent.payload, refs={**sent.refs, **refs},
                           attempt=sent.attempt + 1)


def one(target: QuickBooksTarget, sent: OutboundCommand) -> RecordResult:
    [result] = target.send([sent])
    return result


CUSTOMER = {"id": "cust_hubspot_1", "name": "Globex: LLC", "currency": "USD",
            "billing_country": "US", "tax_id": "94-1"}
PROJECT = {"code": "GLX-001", "name": "Rollout", "status": "active", "customer": "cust_hubspot_1",
           "contract": "ct-1"}


def charge(i: int = 1, **changes: Any) -> dict[str, Any]:
    return {"id": f"tc_te-{i}", "time_entry": f"te-{i}", "project": "GLX-001",
            "worker": "w-alice", "work_date": "2026-03-02", "hours": "7.33", "rate": "175.50",
            "amount": "1286.42", "currency": "USD", "billable": True, "tax_code": None,
            "config_version": 1, "source_version": 1, **changes}


def invoice(**changes: Any) -> dict[str, Any]:
    return {"id": "inv_GLX-001_2026-03-31", "customer": "cust_hubspot_1", "project": "GLX-001",
            "currency": "USD", "lines": [
                {"description": "te-1 7.33 h", "quantity": "7.33", "unit_price": "175.50",
                 "amount": "1286.42", "tax_code": "US-EXEMPT", "source": "tc_te-1"},
                {"description": "te-2 1 h", "quantity": "1", "unit_price": "150.00",
                 "amount": "150.00", "tax_code": "US-EXEMPT", "source": "tc_te-2"}],
            "subtotal": "1436.42", "tax": "0.00", "total": "1436.42", "status": "draft",
            "po_number": "PO-77", "config_version": 1, **changes}


@pytest.fixture
def project(target: QuickBooksTarget) -> dict[str, str]:
    """A customer and its project in QuickBooks: the refs later commands carry."""
    customer = one(target, command("customer.upsert", CUSTOMER))
    refs = {"customer:cust_hubspot_1": str(customer.external_id)}
    made = one(target, command("project.upsert", PROJECT, refs))
    return {**refs, "project:GLX-001": str(made.external_id)}


def batch_faults(qbo: QuickBooksEmulator, *faults: Fault) -> list[FaultRule]:
    return [FaultRule(f, delay=0.6, path_prefix=f"/v3/company/{qbo.realm_id}/batch")
            for f in faults]


# -- customers and projects ------------------------------------------------------------
def test_a_project_is_a_sub_customer_of_its_customer(qbo: QuickBooksEmulator,
                                                     project: dict[str, str]) -> None:
    customer, job = qbo.records("Customer")
    assert (customer["DisplayName"], customer["CurrencyRef"], customer["BillAddr"]) == (
        "Globex- LLC", {"value": "USD"}, {"Country": "US"})  # no colon in a QuickBooks name
    assert (job["DisplayName"], job["Job"], job["ParentRef"], job["BillWithParent"],
            job["FullyQualifiedName"]) == ("GLX-001 Rollout", True,
                                           {"value": customer["Id"]}, True,
                                           "Globex- LLC:GLX-001 Rollout")
    assert "[billbridge GLX-001 " in job["Notes"]


def test_after_creation_quickbooks_owns_the_customer(qbo: QuickBooksEmulator,
                                                     target: QuickBooksTarget,
                                                     project: dict[str, str]) -> None:
    calls = qbo.calls()
    result = one(target, command("customer.upsert", {**CUSTOMER, "name": "Renamed"}, project))
    assert (result.status, result.external_id) == (ResultStatus.APPLIED,
                                                   project["customer:cust_hubspot_1"])
    assert qbo.calls() == calls


def test_a_project_update_reads_its_sync_token_and_changes_only_what_differs(
        qbo: QuickBooksEmulator, target: QuickBooksTarget, project: dict[str, str]) -> None:
    closed = one(target, command("project.upsert", {**PROJECT, "status": "closed"}, project))
    [job] = [c for c in qbo.records("Customer") if c["Job"]]
    assert closed.external_id == job["Id"] and (job["Active"], job["SyncToken"]) == (False, "1")
    writes = qbo.calls("/batch")
    same = one(target, command("project.upsert", {**PROJECT, "status": "closed"}, project))
    assert same.status is ResultStatus.APPLIED
    assert qbo.calls("/batch") == writes + 1  # the read; nothing to write


def test_a_name_someone_else_holds_is_refused_with_what_to_do(qbo: QuickBooksEmulator,
                                                              target: QuickBooksTarget) -> None:
    qbo.seed("Vendor", {"DisplayName": "Globex- LLC"})
    qbo.seed("Customer", {"DisplayName": "Initech", "Notes": "entered by hand"})
    vendor_clash = one(target, command("customer.upsert", CUSTOMER))
    hand_made = one(target, command("customer.upsert", {**CUSTOMER, "id": "c2",
                                                        "name": "Initech"}))
    for result, name in ((vendor_clash, "Globex- LLC"), (hand_made, "Initech")):
        assert (result.status, result.code) == (ResultStatus.REJECTED, "DUPLICATE_NAME")
        assert f"named {name!r}" in str(result.message) and "rename" in str(result.message)


def test_a_customer_resent_after_a_lost_answer_is_found_by_its_name_and_marker(
        qbo: QuickBooksEmulator, target: QuickBooksTarget) -> None:
    sent = command("customer.upsert", CUSTOMER)
    qbo.faults.script(batch_faults(qbo, Fault.LOST_ACK, Fault.SERVER_ERROR))
    with pytest.raises(TransientError):
        target.send([sent])
    result = one(target, again(sent))
    assert result.status is ResultStatus.APPLIED
    assert [c["Id"] for c in qbo.records("Customer")] == [result.external_id]


def test_a_project_waits_for_its_customer_and_needs_one(target: QuickBooksTarget) -> None:
    waiting = one(target, command("project.upsert", PROJECT))
    orphan = one(target, command("project.upsert", {**PROJECT, "customer": None}))
    assert (waiting.status, orphan.status, orphan.code) == (
        ResultStatus.RETRY, ResultStatus.REJECTED, "PROJECT_WITHOUT_CUSTOMER")


def test_an_edit_between_reading_and_writing_is_retried(
        qbo: QuickBooksEmulator, target: QuickBooksTarget, project: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    edit_after_read(monkeypatch, target, lambda: _edit_job(qbo))
    result = one(target, command("project.upsert", {**PROJECT, "status": "closed"}, project))
    assert (result.status, result.code) == (ResultStatus.RETRY, "5010")


def _edit_job(qbo: QuickBooksEmulator) -> None:
    with qbo.lock:
        job = next(c for c in qbo.company.records["Customer"].values() if c["Job"])
        qbo.company.update("Customer", {"Id": job["Id"], "SyncToken": job["SyncToken"],
                                        "sparse": True, "Notes": job["Notes"] + " (edited)"})


def edit_after_read(monkeypatch: pytest.MonkeyPatch, target: QuickBooksTarget,
                    edit: Callable[[], Any]) -> None:
    """Someone changes QuickBooks between the target's read and its write."""
    read = target.client.queries

    def then_edit(statements: Any) -> Any:
        answers = read(statements)
        edit()
        return answers
    monkeypatch.setattr(target.client, "queries", then_edit)


# -- time --------------------------------------------------------------------------------
def test_time_becomes_an_activity_of_the_workers_employee(qbo: QuickBooksEmulator,
                                                          target: QuickBooksTarget,
                                                          project: dict[str, str]) -> None:
    billable, cost = target.send([
        command("time_charge.post", charge(1), project),
        command("time_charge.post", charge(2, billable=False, rate="80.00", amount="586.40",
                                            hours="7.33"), project)])
    assert billable.status is cost.status is ResultStatus.APPLIED
    [employee] = qbo.records("Employee")
    first, second = qbo.records("TimeActivity")
    assert employee["DisplayName"] == "w-alice"
    assert (first["EmployeeRef"], first["CustomerRef"], first["TxnDate"], first["Hours"],
            first["Minutes"], first["BillableStatus"], first["HourlyRate"]) == (
        {"value": employee["Id"]}, {"value": project["project:GLX-001"]}, "2026-03-02", 7, 20,
        "Billable", Decimal("175.50"))
    assert (second["BillableStatus"], second["CostRate"]) == ("NotBillable", Decimal("80.00"))
    assert "te-1 w-alice: 7.33 h at 175.50 = 1286.42 USD (billable)" in first["Description"]


def test_a_dropped_answer_is_resent_at_once_and_quickbooks_answers_from_its_request_id(
        qbo: QuickBooksEmulator, target: QuickBooksTarget, project: dict[str, str]) -> None:
    target.directory.resolve(["w-alice"], item=False)
    qbo.faults.script(batch_faults(qbo, Fault.LOST_ACK))
    result = one(target, command("time_charge.post", charge(), project))
    assert result.status is ResultStatus.APPLIED and qbo.replays == 1
    assert [a["Id"] for a in qbo.records("TimeActivity")] == [result.external_id]


def test_a_resend_in_a_later_batch_finds_the_activities_by_their_markers(
        qbo: QuickBooksEmulator, target: QuickBooksTarget, project: dict[str, str]) -> None:
    target.directory.resolve(["w-alice"], item=False)
    first = [command("time_charge.post", charge(i, work_date=f"2026-03-0{2 + i % 3}"), project)
             for i in range(6)]
    qbo.faults.script(batch_faults(qbo, Fault.TIMEOUT, Fault.SERVER_ERROR))
    with pytest.raises(TransientError):
        target.send(first)  # applied, but both the answer and the resend's were lost
    regrouped = [again(c) for c in first[3:]] + [command("time_charge.post", charge(9), project)]
    results = target.send(regrouped)
    assert all(r.status is ResultStatus.APPLIED for r in results)
    activities = qbo.records("TimeActivity")
    assert len(activities) == 7
    by_entry = {a["Description"].split()[0]: a["Id"] for a in activities}
    assert [r.external_id for r in results] == [by_entry[f"te-{i}"] for i in (3, 4, 5, 9)]


def test_a_reversal_deletes_the_activity_once(qbo: QuickBooksEmulator, target: QuickBooksTarget,
                                              project: dict[str, str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    posted = one(target, command("time_charge.post", charge(1), project))
    refs = {**project, "time_charge:tc_te-1": str(posted.external_id)}
    reverse = {"charge": "tc_te-1", "amount": "1286.42", "currency": "USD"}
    assert one(target, command("time_charge.reverse", reverse, refs)).status \
        is ResultStatus.APPLIED
    assert qbo.records("TimeActivity") == []
    writes = qbo.calls("/batch")
    resent = one(target, command("time_charge.reverse", reverse, refs, attempt=2))
    assert (resent.status, resent.external_id) == (ResultStatus.APPLIED, posted.external_id)
    assert qbo.calls("/batch") == writes + 1  # the read found it gone; nothing written
    # Deleted by someone between our read and our delete: gone all the same.
    second = one(target, command("time_charge.post", charge(2), project))
    refs["time_charge:tc_te-2"] = str(second.external_id)

    def delete_by_hand() -> None:
        with qbo.lock:
            qbo.company.delete("TimeActivity", {"Id": second.external_id, "SyncToken": "0"})
    edit_after_read(monkeypatch, target, delete_by_hand)
    raced = one(target, command("time_charge.reverse", {**reverse, "charge": "tc_te-2"}, refs))
    assert (raced.status, raced.external_id) == (ResultStatus.APPLIED, second.external_id)


def test_one_write_per_record_per_batch_and_unknown_references_wait(
        target: QuickBooksTarget, project: dict[str, str]) -> None:
    post, repeat, orphan, reverse = target.send([
        command("time_charge.post", charge(1), project),
        command("time_charge.post", charge(1, hours="8"), project),
        command("time_charge.post", charge(2, project="NEW-1"), project),
        command("time_charge.reverse", {"charge": "tc_te-3"}, project)])
    assert post.status is ResultStatus.APPLIED
    assert [r.status for r in (repeat, orphan, reverse)] == [ResultStatus.RETRY] * 3
    assert "goes in the next" in str(repeat.message) and "NEW-1" in str(orphan.message)


def test_bad_commands_are_refused_with_the_reason(target: QuickBooksTarget,
                                                  project: dict[str, str]) -> None:
    results = target.send([command("time_charge.post", charge(1, hours="lots"), project),
                           command("invoice.create", invoice(total=None), project),
                           command("customer.upsert", {"id": "c9"}),
                           command("ledger.post", {"x": 1})])
    assert [(r.status, r.code) for r in results] == [
        (ResultStatus.REJECTED, "INVALID_COMMAND")] * 4
    assert "hours" in str(results[0].message) and "total" in str(results[1].message)


def test_a_worker_whose_name_a_customer_holds_is_refused(qbo: QuickBooksEmulator,
                                                         target: QuickBooksTarget,
                                                         project: dict[str, str]) -> None:
    qbo.seed("Customer", {"DisplayName": "w-alice"})
    result = one(target, command("time_charge.post", charge(), project))
    assert (result.status, result.code) == (ResultStatus.REJECTED, "UNKNOWN_EMPLOYEE")
    assert "employees option" in str(result.message)


def test_known_employees_cost_one_roster_query(qbo: QuickBooksEmulator,
                                               target: QuickBooksTarget) -> None:
    bob = qbo.seed("Employee", {"DisplayName": "W-Bob"})
    calls = qbo.calls()
    assert target.directory.resolve(["w-bob"], item=False) == {}
    assert target.directory.employees == {"w-bob": bob["Id"]}
    assert qbo.calls() == calls + 1 and qbo.records("Employee") == [bob]


# -- invoices --------------------------------------------------------------------------
def test_an_invoice_is_billed_to_the_project_with_mapped_tax_codes(
        qbo: QuickBooksEmulator, target: QuickBooksTarget, project: dict[str, str]) -> None:
    result = one(target, command("invoice.create", invoice(tax="118.50", total="1554.92"),
                                 project))
    [made] = qbo.records("Invoice")
    assert (result.status, result.external_id) == (ResultStatus.APPLIED, made["Id"])
    assert made["CustomerRef"] == {"value": project["project:GLX-001"]}
    assert (made["TotalAmt"], made["CustomerMemo"]) == (Decimal("1554.92"), {"value": "PO PO-77"})
    assert [(line["Amount"], line["SalesItemLineDetail"]["TaxCodeRef"]) for line in made["Line"]] \
        == [(Decimal("1286.42"), {"value": "NON"}), (Decimal("150.00"), {"value": "NON"})]
    assert made["PrivateNote"].startswith("[billbridge inv_GLX-001_2026-03-31 ")


def test_an_invoice_for_a_customer_bills_the_customer(qbo: QuickBooksEmulator,
                                                      target: QuickBooksTarget,
                                                      project: dict[str, str]) -> None:
    one(target, command("invoice.create", invoice(id="inv_cust_2026-03-31", project=None),
                        project))
    assert qbo.records("Invoice")[0]["CustomerRef"] == {
        "value": project["customer:cust_hubspot_1"]}


def test_an_unmapped_tax_code_or_a_missing_item_is_refused(qbo: QuickBooksEmulator,
                                                           project: dict[str, str]) -> None:
    client = client_of(qbo)
    target = QuickBooksTarget(client, directory=Directory(client, service_item="Advisory"))
    no_item = one(target, command("invoice.create", invoice(), project))
    assert (no_item.code, "no income_account" in str(no_item.message)) == ("NO_SERVICE_ITEM",
                                                                            True)
    target.directory = Directory(client, service_item="Advisory", income_account="1")
    no_tax = one(target, command("invoice.create", invoice(), project))
    assert no_tax.code == "NO_TAX_CODE" and "'US-EXEMPT'" in str(no_tax.message)
    assert [i["Name"] for i in qbo.records("Item")] == ["Services", "Advisory"]


def test_an_invoice_resent_later_is_found_by_its_marker(qbo: QuickBooksEmulator,
                                                        target: QuickBooksTarget,
                                                        project: dict[str, str]) -> None:
    sent = command("invoice.create", invoice(), project)
    qbo.faults.script(batch_faults(qbo, Fault.OK, Fault.LOST_ACK, Fault.SERVER_ERROR))
    with pytest.raises(TransientError):
        target.send([sent])
    result = one(target, again(sent))
    assert [i["Id"] for i in qbo.records("Invoice")] == [result.external_id]


# -- the client ----------------------------------------------------------------------------
def test_an_expired_token_is_refreshed_once(qbo: QuickBooksEmulator) -> None:
    client = client_of(qbo, refresh_token="qbo-refresh-token", client_id="qbo-client-id",
                       client_secret="qbo-client-secret")
    qbo.expire_tokens()
    assert client.query("select * from Item")["Item"][0]["Name"] == "Services"
    assert qbo.refreshes == 1 and client.access_token.startswith("qbo-")
    stranger = client_of(qbo, refresh_token="revoked", client_id="qbo-client-id",
                         client_secret="qbo-client-secret")
    qbo.expire_tokens()
    with pytest.raises(PermanentError) as refused:
        stranger.query("select * from Item")
    assert refused.value.code == "TARGET_AUTH" and "invalid_grant" in str(refused.value)


def test_a_429_asks_the_dispatcher_for_quickbooks_minute(qbo: QuickBooksEmulator) -> None:
    qbo.limits["all"] = 2
    client = client_of(qbo)
    client.query("select * from Item")
    client.query("select * from Item")
    with pytest.raises(TransientError) as throttled:
        client.query("select * from Item")
    assert (throttled.value.code, throttled.value.retry_after) == ("HTTP_429", 60.0)
    assert "ThrottleExceeded" in str(throttled.value)
    qbo.limits["all"] = 500
    qbo.faults.script(["429:7"])  # a Retry-After, when there is one, is kept
    with pytest.raises(TransientError) as told:
        client.query("select * from Item")
    assert told.value.retry_after == 7.0


def test_the_clients_pacing_keeps_within_the_realms_batch_limit(qbo: QuickBooksEmulator) -> None:
    clock = ManualClock()
    qbo.clock = clock
    client = QuickBooksClient(qbo.url, qbo.realm_id, access_token="qbo-access-token",
                              token_url=qbo.token_url, clock=clock)
    qbo.tokens = dict.fromkeys(qbo.tokens, clock.monotonic() + 3600)
    for _ in range(45):
        client.queries(["select * from Item"])
    assert all(status == 200 for _m, _p, status in qbo.requests)
    assert clock.monotonic() - ManualClock().monotonic() >= 60 * 5 / 39


def test_batches_and_request_ids_within_quickbooks_limits(qbo: QuickBooksEmulator) -> None:
    client = client_of(qbo)
    with pytest.raises(ValueError, match="at most 30"):
        client.batch([{"bId": str(i), "Query": "select * from Item"} for i in range(31)])
    raw = httpx.Client(base_url=f"{qbo.url}/v3/company/{qbo.realm_id}",
                       headers={"Authorization": "Bearer qbo-access-token"})
    too_many = raw.post("/batch", json={"BatchItemRequest": [
        {"bId": str(i), "Query": "select * from Item"} for i in range(31)]})
    long_bid = raw.post("/batch", params={"requestid": "r1"}, json={"BatchItemRequest": [
        {"bId": "x" * 11, "Query": "select * from Item"}]})
    long_id = raw.post("/batch", params={"requestid": "r" * 37},
                       json={"BatchItemRequest": []})
    assert [(r.status_code, r.json()["Fault"]["Error"][0]["code"])
            for r in (too_many, long_bid, long_id)] == [(400, "1040"), (400, "2050"),
                                                        (400, "2050")]


def test_query_all_pages_through_startposition(qbo: QuickBooksEmulator) -> None:
    for i in range(7):
        qbo.seed("Employee", {"DisplayName": f"e{i}"})
    client = client_of(qbo)
    found = client.query_all("Employee", "Active = true", page_size=3)
    assert [e["DisplayName"] for e in found] == [f"e{i}" for i in range(7)]
    assert qbo.calls("/query") == 3


# -- the source --------------------------------------------------------------------------
def _invoice_in(qbo: QuickBooksEmulator, canonical: str | None, amount: str = "100.00",
                **extra: Any) -> dict[str, Any]:
    customer = qbo.seed("Customer", {"DisplayName": f"C-{canonical}"})
    note = marker(canonical, "e" * 32) if canonical else "made in QuickBooks"
    return qbo.seed("Invoice", {"CustomerRef": {"value": customer["Id"]}, "TotalAmt": amount,
                                "Balance": amount, "PrivateNote": note,
                                "CurrencyRef": {"value": "USD"}, **extra})


def test_the_source_reports_ours_pages_through_one_second_and_resumes(
        qbo: QuickBooksEmulator) -> None:
    for i in range(5):
        _invoice_in(qbo, f"inv_{i}")
    _invoice_in(qbo, None)  # an invoice made in QuickBooks is not ours to report
    source = QuickBooksSource(client_of(qbo), name="qbo", page_size=2)
    pages = list(source.poll(None))
    events = [e for p in pages for e in p.events]
    # Records in the second a page ends on are read again; the inbox drops the repeats.
    assert {e["data"]["invoice"] for e in events} == {f"inv_{i}" for i in range(5)}
    assert {e["data"]["status"] for e in events} == {"issued"}
    resumed = list(source.poll(pages[-1].cursor))
    assert {e["id"] for p in resumed for e in p.events} <= {e["id"] for e in events}


def test_a_payment_reports_the_invoice_it_settles(qbo: QuickBooksEmulator) -> None:
    made = _invoice_in(qbo, "inv_paid")
    source = QuickBooksSource(client_of(qbo), name="qbo")
    cursor = list(source.poll(None))[-1].cursor
    qbo.pay(made["Id"], "40.00")
    # Only the payment stream sees it when the invoice's own stamp is behind the cursor.
    with qbo.lock:
        qbo.company.records["Invoice"][made["Id"]]["MetaData"]["LastUpdatedTime"] = \
            "2020-01-01T00:00:00-08:00"
    pages = list(source.poll(cursor))
    events = [e for p in pages for e in p.events]
    assert [e["data"] for e in events] == [{"invoice": "inv_paid", "erp_id": made["Id"],
                                           "status": "issued", "amount_paid": "40.00"}]
    assert events[0]["id"] == f"qbo-invoice:{made['Id']}:issued:40.00"


def test_an_unreadable_invoice_of_ours_is_malformed_and_a_foreign_cursor_refused(
        qbo: QuickBooksEmulator) -> None:
    broken = _invoice_in(qbo, "inv_broken")
    with qbo.lock:
        del qbo.company.records["Invoice"][broken["Id"]]["TotalAmt"]
    source = QuickBooksSource(client_of(qbo), name="qbo")
    [page] = list(source.poll(None))
    [bad] = page.events
    assert isinstance(bad, Malformed) and "inv_broken" in bad.reason and "TotalAmt" in bad.reason
    with pytest.raises(PermanentError, match="cursor"):
        list(source.poll("2026-03-01"))


def test_the_emulator_runs_from_the_cli() -> None:
    process = subprocess.Popen([sys.executable, "-m", "billbridge", "emulator", "run",
                                "quickbooks"], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split("listening on ")[1].strip()
        discovery = httpx.get(url + DISCOVERY_PATH).json()
        assert discovery["token_endpoint"] == f"{url}/oauth2/v1/tokens/bearer"
    finally:
        process.terminate()
        process.wait(timeout=10)
