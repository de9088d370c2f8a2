"""Oracle Fusion Cloud ERP: the emulator and the connector against Oracle's
documented payloads (tests/oracle_fusion_docs.py), over HTTP on 127.0.0.1,
and both readings of every fact the sources leave thin (page-size cap,
``hasMore`` after an offset, Upsert-Mode, duplicate references, error
bodies, the batch media type)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

import oracle_fusion_docs as docs
from billbridge.connectors.base import OutboundCommand, PermanentError, ResultStatus
from billbridge.connectors.oracle_fusion import mapping
from billbridge.connectors.oracle_fusion.client import FSCM, OracleClient, Part, read_error
from billbridge.connectors.oracle_fusion.emulator import OracleEmulator
from billbridge.connectors.oracle_fusion.mapping import OracleSettings
from billbridge.connectors.oracle_fusion.source import OracleInvoiceSource
from billbridge.connectors.oracle_fusion.target import OracleTarget
from billbridge.engine.clock import SystemClock
from billbridge.engine.sync import sync
from billbridge.store.tables import inbox

INVOICES = f"{FSCM}/receivablesInvoices"
PARTIES = f"/crmRestApi/resources/{docs.VERSION}/hubOrganizations"


@pytest.fixture
def oracle() -> Iterator[OracleEmulator]:
    with OracleEmulator() as emulator:
        yield emulator


def client_of(emulator: OracleEmulator, **kwargs: Any) -> OracleClient:
    return OracleClient(emulator.url, username=emulator.username, password=emulator.password,
                        **kwargs)


def raw(emulator: OracleEmulator) -> httpx.Client:
    """A plain HTTP client with Oracle's curl headers: the documented requests as sent."""
    basic = base64.b64encode(f"{emulator.username}:{emulator.password}".encode()).decode()
    return httpx.Client(base_url=emulator.url, headers={
        "Authorization": f"Basic {basic}", "Content-Type": docs.ITEM_MEDIA_TYPE})


def charge(n: int, project: str = "P-1", hours: str = "8") -> dict[str, Any]:
    return {"id": f"tc_{n}", "time_entry": f"te_{n}", "project": project, "worker": "w-alice",
            "work_date": "2026-03-02", "hours": hours, "rate": "175",
            "amount": str(Decimal(hours) * 175), "currency": "USD", "billable": True,
            "config_version": 1, "source_version": 1}


def command(n: int, kind: str, payload: dict[str, Any], *, attempt: int = 1,
            refs: dict[str, str] | None = None, key: str | None = None) -> OutboundCommand:
    return OutboundCommand(n, "oracle-fusion", kind, key or f"{n:032x}", "agg", payload,
                           refs=refs or {}, attempt=attempt)


def set_up(target: OracleTarget) -> None:
    customer = {"id": "cust_1", "name": "Globex", "currency": "USD", "billing_country": "US"}
    results = target.send([command(1, "customer.upsert", customer),
                           command(2, "project.upsert", {"code": "P-1", "name": "Globex rollout",
                                                         "status": "active"})])
    assert {r.status for r in results} == {ResultStatus.APPLIED}


# -- the documented payloads ---------------------------------------------------------------
def test_the_documented_invoice_is_created_then_completed_as_oracle_answers(
        oracle: OracleEmulator) -> None:
    with raw(oracle) as http:
        made = http.post(INVOICES, json=docs.CREATE_INVOICE)
        assert made.status_code == 201, made.text
        invoice_id = made.json()[docs.CREATED_INVOICE_ID]
        done = http.patch(f"{INVOICES}/{invoice_id}", json=docs.COMPLETE_INVOICE)
    assert done.status_code == 200
    answer = done.json()
    expected = {k: v for k, v in docs.COMPLETED_INVOICE_FIELDS.items()
                if k != "CustomerTransactionId"}
    assert {k: answer[k] for k in expected} == expected
    assert answer["InvoiceStatus"] == "Complete"


def test_the_client_writes_the_documented_invoice_and_party_fields() -> None:
    payload = {"id": "inv_1", "customer": "cust_1", "project": "P-1", "currency": "USD",
               "lines": [{"description": "Consulting", "quantity": "8", "unit_price": "175",
                          "amount": "1400.00", "tax_code": "US-NOTAX"}],
               "subtotal": "1400.00", "tax": "0", "total": "1400.00"}
    sent = mapping.invoice(payload, "cust_1", OracleSettings(tax_codes={"US-NOTAX": "EXEMPT"}),
                           date(2026, 3, 31))
    documented = set(docs.CREATE_INVOICE) - {"receivablesInvoiceLines"}
    assert documented <= set(sent)
    assert set(sent["receivablesInvoiceLines"][0]) == set(docs.INVOICE_LINE_FIELDS)
    party = mapping.organization({"id": "cust_1", "name": "Globex", "currency": "USD",
                                  "billing_country": "US"}, OracleSettings())
    assert set(party) == set(docs.CREATE_ORGANIZATION)
    assert set(party["SourceSystemReference"][0]) == \
        set(docs.CREATE_ORGANIZATION["SourceSystemReference"][0])


def test_the_documented_batch_creates_its_parts_and_answers_their_payloads(
        oracle: OracleEmulator) -> None:
    with raw(oracle) as http:
        answer = http.post("/fscmRestApi/resources", json=docs.BATCH,
                           headers={"Content-Type": "application/vnd.oracle.adf.batch+json"})
    assert answer.status_code == 200, answer.text
    [part] = answer.json()["parts"]
    assert (part["id"], part["operation"]) == ("part1", "create")
    assert part["payload"]["TransactionNumber"] == "864"
    assert len(oracle.all("receivablesInvoices")) == 1


def test_a_batch_is_all_or_none_and_answers_only_its_failing_part(
        oracle: OracleEmulator) -> None:
    bad = {**docs.CREATE_INVOICE, "TransactionNumber": "865", "BillToCustomerNumber": "9999"}
    client = client_of(oracle)
    answer = client.batch("/fscmRestApi/resources", [
        Part("p1", f"/{docs.VERSION}/receivablesInvoices", "create", docs.CREATE_INVOICE),
        Part("p2", f"/{docs.VERSION}/receivablesInvoices", "create", bad)], "batch")
    assert answer.applied == {} and list(answer.failed) == ["p2"]
    assert "9999" in answer.failed["p2"]
    assert oracle.all("receivablesInvoices") == []


def test_a_collection_answers_the_documented_keys_and_caps_the_limit_silently(
        oracle: OracleEmulator) -> None:
    with raw(oracle) as http:
        default = http.get(f"{FSCM}/projects").json()
        asked = http.get(f"{FSCM}/projects", params={"limit": 1000}).json()
    assert set(docs.COLLECTION_REQUIRED) <= set(default)
    assert default["limit"] == docs.DEFAULT_LIMIT
    assert asked["limit"] == docs.MAX_LIMIT


# -- paging: both readings of hasMore after an offset, both caps ---------------------------
@pytest.mark.parametrize(("has_more_after_offset", "max_limit"),
                         [(True, docs.MAX_LIMIT), (False, docs.MAX_LIMIT),
                          (False, docs.SOME_MAX_LIMIT)])
def test_a_walk_reads_every_item_whatever_hasMore_says_after_an_offset(
        has_more_after_offset: bool, max_limit: int) -> None:
    with OracleEmulator(has_more_after_offset=has_more_after_offset,
                        max_limit=max_limit) as oracle:
        for n in range(2 * max_limit + 3):
            oracle.put("projects", {"ProjectNumber": f"X-{n}", "ProjectName": f"X {n}"})
        client = client_of(oracle, page_size=docs.MAX_LIMIT)
        numbers = [r["ProjectNumber"] for r in client.items(f"{FSCM}/projects", "projects",
                                                            q="ProjectNumber LIKE 'X-*'")]
    assert len(numbers) == len(set(numbers)) == 2 * max_limit + 3


def test_a_page_served_again_whatever_the_offset_stops_with_pagination_loop() -> None:
    page = {"items": [{"ProjectId": 1}], "count": 1, "hasMore": True, "limit": 1, "offset": 0,
            "links": []}
    transport = httpx.MockTransport(lambda _r: httpx.Response(200, json=page))
    client = OracleClient("https://fusion.example", username="u", password="p",
                          transport=transport)
    with pytest.raises(PermanentError) as caught:
        list(client.items(f"{FSCM}/projects", "projects"))
    assert caught.value.code == "PAGINATION_LOOP"


# -- error bodies: plain text and the framework's JSON ----------------------------------------
@pytest.mark.parametrize("error_format", ["text", "json"])
def test_a_refusal_reaches_the_operator_with_oracles_message(error_format: str) -> None:
    with OracleEmulator(error_format=error_format) as oracle:
        with raw(oracle) as http:
            answer = http.post(INVOICES, json={**docs.CREATE_INVOICE,
                                               "BillToCustomerNumber": "9999"})
        code, message = read_error(answer)
        with pytest.raises(PermanentError) as caught:
            client_of(oracle).create(INVOICES, "create invoice",
                                     {**docs.CREATE_INVOICE, "BillToCustomerNumber": "9999"})
    assert answer.status_code == 400
    assert message == "The bill-to customer 9999 is not valid."
    assert "The bill-to customer 9999 is not valid." in str(caught.value)
    assert code == ("400" if error_format == "json" else "HTTP_400")


# -- Upsert-Mode, both readings, and a resend found by its reference ---------------------------
@pytest.mark.parametrize("honoured", [True, False])
def test_a_resent_party_and_project_are_found_not_made_twice(honoured: bool) -> None:
    with OracleEmulator(honour_upsert_mode=honoured) as oracle:
        target = OracleTarget(client_of(oracle))
        set_up(target)
        customer = {"id": "cust_1", "name": "Globex", "currency": "USD", "billing_country": "US"}
        again = target.send([command(1, "customer.upsert", customer, attempt=2),
                             command(2, "project.upsert", {"code": "P-1", "name": "Globex",
                                                           "status": "active"}, attempt=2)])
        parties = [p for p in oracle.all("hubOrganizations") if p["PartyNumber"] == "cust_1"]
        projects = [p for p in oracle.all("projects") if p["ProjectNumber"] == "P-1"]
    assert [r.status for r in again] == [ResultStatus.APPLIED] * 2
    assert (len(parties), len(projects)) == (1, 1)
    assert target.found_by_reference == 2


@pytest.mark.parametrize("honoured", [True, False])
def test_upsert_mode_updates_a_party_only_where_fusion_honours_it(honoured: bool) -> None:
    with OracleEmulator(honour_upsert_mode=honoured) as oracle:
        client = client_of(oracle)
        client.create(PARTIES, "party", docs.CREATE_ORGANIZATION)
        renamed = {**docs.CREATE_ORGANIZATION, "OrganizationName": "Globex Corporation"}
        if honoured:
            client.create(PARTIES, "party", renamed, upsert=True)
        else:
            with pytest.raises(PermanentError):
                client.create(PARTIES, "party", renamed, upsert=True)
        [party] = [p for p in oracle.all("hubOrganizations") if p["PartyNumber"] == "BB-1001"]
    assert party["OrganizationName"] == ("Globex Corporation" if honoured else "Globex LLC")


@pytest.mark.parametrize("unique", [False, True])
def test_fusion_takes_a_repeated_cost_reference_unless_told_it_is_unique(unique: bool) -> None:
    with OracleEmulator(unique_cost_references=unique) as oracle:
        client = client_of(oracle)
        set_up(OracleTarget(client))
        cost = mapping.cost(charge(1), "ab" * 16, OracleSettings())
        client.create(f"{FSCM}/unprocessedProjectCosts", "cost", cost)
        if unique:
            with pytest.raises(PermanentError):
                client.create(f"{FSCM}/unprocessedProjectCosts", "cost", cost)
        else:
            client.create(f"{FSCM}/unprocessedProjectCosts", "cost", cost)
        held = len(oracle.all("unprocessedProjectCosts"))
    assert held == (1 if unique else 2)


def test_a_resent_cost_is_found_after_fusion_imported_it(oracle: OracleEmulator) -> None:
    target = OracleTarget(client_of(oracle))
    set_up(target)
    [first] = target.send([command(10, "time_charge.post", charge(1))])
    oracle.import_costs()  # the cost moves to projectCosts with a new hash key
    [again] = target.send([command(10, "time_charge.post", charge(1), attempt=2)])
    assert first.status is again.status is ResultStatus.APPLIED
    assert again.external_id == first.external_id
    assert len(oracle.all("projectCosts")) == 1 and oracle.all("unprocessedProjectCosts") == []
    assert [(p.charge, p.amount) for p in target.live_postings()] == [("tc_1", Decimal("1400"))]


def test_a_refused_part_is_rejected_and_its_batch_partners_sent_again(
        oracle: OracleEmulator) -> None:
    target = OracleTarget(client_of(oracle))
    set_up(target)
    results = target.send([command(10, "time_charge.post", charge(1)),
                           command(11, "time_charge.post", charge(2, project="P-404"))])
    by_key = {r.idempotency_key: r for r in results}
    assert by_key[f"{10:032x}"].status is ResultStatus.RETRY
    assert by_key[f"{10:032x}"].code == "BATCH_ROLLED_BACK"
    assert by_key[f"{11:032x}"].status is ResultStatus.REJECTED
    assert "P-404" in str(by_key[f"{11:032x}"].message)
    assert oracle.all("unprocessedProjectCosts") == []


@pytest.mark.parametrize(("served", "other"), [
    ("application/vnd.oracle.adf.batch+json", "application/json"),
    ("application/json", "application/vnd.oracle.adf.batch+json")])
def test_the_batch_media_type_is_a_setting(served: str, other: str) -> None:
    with OracleEmulator(batch_types=(served,)) as oracle:
        target = OracleTarget(client_of(oracle, batch_media_type=served))
        set_up(target)
        [result] = target.send([command(10, "time_charge.post", charge(1))])
        with pytest.raises(PermanentError) as refused:
            OracleTarget(client_of(oracle, batch_media_type=other)).send(
                [command(11, "time_charge.post", charge(2))])
    assert result.status is ResultStatus.APPLIED
    assert "media type" in str(refused.value)


def test_without_batches_each_cost_is_one_post(oracle: OracleEmulator) -> None:
    target = OracleTarget(client_of(oracle, concurrency=3),
                          OracleSettings(use_batch=False))
    set_up(target)
    before = oracle.api_calls("POST")
    results = target.send([command(10 + n, "time_charge.post", charge(n)) for n in range(6)])
    assert {r.status for r in results} == {ResultStatus.APPLIED}
    assert oracle.api_calls("POST") - before == 6 and oracle.batches == []
    assert len(target.live_postings()) == 6


def test_a_reversal_takes_the_cost_out_of_the_live_ledger(oracle: OracleEmulator) -> None:
    target = OracleTarget(client_of(oracle))
    set_up(target)
    [posted] = target.send([command(10, "time_charge.post", charge(1))])
    oracle.import_costs()
    refs = {"time_charge:tc_1": str(posted.external_id)}
    [undone] = target.send([command(11, "time_charge.reverse", {"charge": "tc_1"}, refs=refs)])
    assert undone.status is ResultStatus.APPLIED
    assert target.live_postings() == []
    [reversal] = oracle.all("unprocessedProjectCosts")
    assert reversal["Quantity"] == Decimal("-8")


# -- status read back: complete → issued, receipt → paid ------------------------------------------
def test_a_completed_invoice_is_issued_and_a_receipt_makes_it_paid(
        oracle: OracleEmulator) -> None:
    stamps = iter(datetime(2026, 4, 1, 8, 0, tzinfo=UTC) for _ in range(1000))
    oracle.now = lambda: next(stamps)  # every write in one instant: ties on LastUpdateDate
    client = client_of(oracle)
    target = OracleTarget(client, OracleSettings(tax_codes={"US-NOTAX": "EXEMPT"}))
    set_up(target)
    made = []
    for n in range(3):
        payload = {"id": f"inv_{n}", "customer": "cust_1", "currency": "USD",
                   "lines": [{"description": "Work", "quantity": "1", "unit_price": "100",
                              "amount": "100.00"}],
                   "subtotal": "100.00", "tax": "0", "total": "100.00"}
        [result] = target.send([command(20 + n, "invoice.create", payload,
                                        refs={"customer:cust_1": "cust_1"})])
        made.append(str(result.external_id))
    source = OracleInvoiceSource(client, page_size=1)
    assert [e for p in source.poll(None) for e in p.events] == []  # incomplete: nothing yet
    for erp_id in made:
        oracle.complete_invoice(erp_id)
    pages = list(source.poll(None))
    issued = [e["data"]["invoice"] for p in pages for e in p.events]
    assert issued == ["inv_0", "inv_1", "inv_2"]  # one page each, ties kept apart by id
    oracle.receipt("inv_1", "100.00")
    later = [e for p in source.poll(pages[-1].cursor) for e in p.events]
    assert {(e["data"]["invoice"], e["data"]["status"], e["data"]["amount_paid"])
            for e in later} == {("inv_1", "paid", "100.00")}
    assert json.loads(str(pages[-1].cursor))["invoices"][1] == int(made[-1])


def test_an_amount_paid_with_more_digits_than_a_float_holds_reaches_the_inbox_exactly(
        oracle: OracleEmulator, engine: Engine) -> None:
    """Fusion's amounts are JSON numbers read as Decimal: as floats,
    922337203685477.58 less a 0.01 balance would be 922337203685477.59 paid."""
    client = client_of(oracle)
    target = OracleTarget(client, OracleSettings(tax_codes={"US-NOTAX": "EXEMPT"}))
    set_up(target)
    total = "922337203685477.58"
    payload = {"id": "inv_big", "customer": "cust_1", "currency": "USD",
               "lines": [{"description": "Work", "quantity": "1", "unit_price": total,
                          "amount": total}], "subtotal": total, "tax": "0", "total": total}
    [made] = target.send([command(40, "invoice.create", payload,
                                  refs={"customer:cust_1": "cust_1"})])
    oracle.complete_invoice(str(made.external_id))
    oracle.receipt("inv_big", "922337203685477.57")
    result = sync(engine, OracleInvoiceSource(client), SystemClock())
    assert result.accepted == 1 and result.malformed == 0
    with engine.connect() as conn:
        [stored] = conn.execute(select(inbox.c.payload)).scalars()
    assert json.loads(stored)["data"]["amount_paid"] == "922337203685477.57"


def test_a_keyset_page_served_again_stops_with_pagination_loop() -> None:
    row = {"CustomerTransactionId": 1, "TransactionNumber": "inv_1", "InvoiceStatus": "Complete",
           "LastUpdateDate": "2026-04-01T08:00:00.000000+00:00", "EnteredAmount": 1,
           "InvoiceBalanceAmount": 1}
    page = {"items": [row], "count": 1, "hasMore": True, "limit": 1, "offset": 0, "links": []}
    transport = httpx.MockTransport(lambda _r: httpx.Response(200, json=page))
    client = OracleClient("https://fusion.example", username="u", password="p",
                          transport=transport)
    with pytest.raises(PermanentError) as caught:
        list(OracleInvoiceSource(client, page_size=1).poll(None))
    assert caught.value.code == "PAGINATION_LOOP"


@pytest.mark.parametrize(("send_header", "honoured", "outcome"), [
    (True, True, ResultStatus.APPLIED), (False, True, ResultStatus.REJECTED),
    (True, False, ResultStatus.REJECTED)])
def test_a_party_fusion_already_holds_is_updated_only_through_an_honoured_upsert_mode(
        send_header: bool, honoured: bool, outcome: ResultStatus) -> None:
    with OracleEmulator(honour_upsert_mode=honoured) as oracle:
        oracle.put("hubOrganizations", {"PartyNumber": "cust_1", "OrganizationName": "Old"})
        target = OracleTarget(client_of(oracle), OracleSettings(upsert_mode=send_header))
        customer = {"id": "cust_1", "name": "Globex", "currency": "USD", "billing_country": "US"}
        [result] = target.send([command(1, "customer.upsert", customer)])
        names = [p["OrganizationName"] for p in oracle.all("hubOrganizations")
                 if p["PartyNumber"] == "cust_1"]
    assert result.status is outcome
    assert names == (["Globex"] if outcome is ResultStatus.APPLIED else ["Old"])
    if outcome is ResultStatus.REJECTED:
        assert "already exists" in str(result.message)


def test_a_wrong_password_is_a_configuration_error_not_a_retry(oracle: OracleEmulator) -> None:
    client = OracleClient(oracle.url, username=oracle.username, password="wrong")
    with pytest.raises(PermanentError) as caught:
        client.page(f"{FSCM}/projects", "projects")
    assert caught.value.code == "TARGET_AUTH" and "HTTP 401" in str(caught.value)


def test_billbridge_emulator_run_oracle_fusion_serves_oracles_collections() -> None:
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-m", "billbridge", "emulator", "run",
                                "oracle-fusion"], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split("listening on ")[1].strip()
        answer = httpx.get(f"{url}{FSCM}/projects", auth=("billbridge.integration",
                                                          "fusion-password"))
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert answer.status_code == 200
    assert set(docs.COLLECTION_REQUIRED) <= set(answer.json())


@pytest.mark.parametrize("unique", [False, True])
def test_fusion_takes_a_repeated_transaction_number_unless_told_it_is_unique(
        unique: bool) -> None:
    with OracleEmulator(unique_transaction_numbers=unique) as oracle:
        client = client_of(oracle)
        client.create(INVOICES, "invoice", docs.CREATE_INVOICE)
        if unique:
            with pytest.raises(PermanentError) as refused:
                client.create(INVOICES, "invoice", docs.CREATE_INVOICE)
            assert "864 already exists" in str(refused.value)
        else:
            client.create(INVOICES, "invoice", docs.CREATE_INVOICE)
        held = len(oracle.all("receivablesInvoices"))
    assert held == (1 if unique else 2)


def test_with_unique_references_a_resend_is_still_found_not_refused() -> None:
    with OracleEmulator(unique_cost_references=True, unique_transaction_numbers=True) as oracle:
        target = OracleTarget(client_of(oracle))
        set_up(target)
        [first] = target.send([command(10, "time_charge.post", charge(1))])
        [again] = target.send([command(10, "time_charge.post", charge(1), attempt=2)])
    assert first.status is again.status is ResultStatus.APPLIED
    assert target.found_by_reference == 1
