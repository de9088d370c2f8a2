"""The Salesforce connector against its TLS emulator: SOQL polling with
keyset cursors, Outbound Messages, the daily allocation, token refresh and
write-back by external id."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from billbridge.connectors.base import (
    Malformed,
    OutboundCommand,
    PermanentError,
    RateLimit,
    ResultStatus,
    TransientError,
)
from billbridge.connectors.ratelimit import QUOTA_EXHAUSTED
from billbridge.connectors.salesforce.client import SalesforceClient
from billbridge.connectors.salesforce.emulator import SalesforceEmulator
from billbridge.connectors.salesforce.mapping import format_stamp
from billbridge.connectors.salesforce.source import SalesforceSource, decode_cursor
from billbridge.connectors.salesforce.target import SalesforceTarget
from billbridge.connectors.salesforce.webhooks import SalesforceOutboundMessages
from billbridge.emulation.server import Response
from billbridge.emulation.tls import self_signed
from billbridge.engine.clock import SystemClock
from billbridge.engine.hub import Hub
from billbridge.engine.sync import load_cursor, sync
from billbridge.store.tables import inbox
from billbridge.web import HubServer
from fakes import FakeTarget

SAME_INSTANT = "2026-03-05T10:00:00.000Z"
FAST = RateLimit(1000, 1, burst=1000)


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    return self_signed(Path(tmp_path_factory.mktemp("salesforce-tls")))


@pytest.fixture
def org(cert: tuple[str, str]) -> Iterator[SalesforceEmulator]:
    emulator = SalesforceEmulator(tls=cert)
    emulator.start()
    yield emulator
    emulator.stop()


def make_client(org: SalesforceEmulator, cert: tuple[str, str], *, batch_size: int = 3,
                **extra: Any) -> SalesforceClient:
    return SalesforceClient(org.url, client_id="billbridge", client_secret="s3cret",
                            refresh_token="refresh-token", verify=cert[0],
                            batch_size=batch_size, rate_limit=FAST, **extra)


def account(i: int, **extra: Any) -> dict[str, Any]:
    return {"Name": f"Globex {i}", "BillingCountry": "United States", "Tax_Id__c": f"TX-{i}",
            "CurrencyIsoCode": "USD", **extra}


def opportunity(account_id: str, i: int, **extra: Any) -> dict[str, Any]:
    return {"Name": f"Deal {i}", "AccountId": account_id, "StageName": "Closed Won",
            "IsWon": True, "Amount": 120000.0, "CloseDate": "2026-03-01",
            "CurrencyIsoCode": "USD", "Billing_Model__c": "Time and Materials",
            "Legal_Entity__c": "US01", "Contract_Start__c": "2026-03-01",
            "Contract_End__c": "2026-12-31", "Rate_Card__c": "rc-standard",
            "Budget_Cap__c": 50000.0, "Project_Code__c": f"GLX-{i:03d}", **extra}


def stored(engine: Engine, prefix: str = "") -> list[str]:
    with engine.connect() as conn:
        return sorted(i for i in conn.execute(select(inbox.c.event_id)).scalars()
                      if i.startswith(prefix))


def payload(engine: Engine, event_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        text = conn.execute(select(inbox.c.payload).where(inbox.c.event_id == event_id)).scalar()
    return dict(json.loads(str(text)))


def opp_ids(org: SalesforceEmulator) -> list[str]:
    return sorted(f"opportunity:{r['Id']}:{format_stamp_of(r)}"
                  for r in org.objects.get("Opportunity", {}).values() if r.get("IsWon"))


def format_stamp_of(record: dict[str, Any]) -> str:
    return str(record["SystemModstamp"]).replace("+0000", "Z")


def test_a_seeded_org_syncs_one_event_per_won_opportunity_over_several_pages(
        engine: Engine, org: SalesforceEmulator, cert: tuple[str, str]) -> None:
    made = org.seed({"Account": [account(1), account(2)]})
    first, second = made["Account"]
    org.seed({"Opportunity": [opportunity(first if i % 2 else second, i) for i in range(7)]
              + [opportunity(first, 90, StageName="Prospecting", IsWon=False)]})
    client = make_client(org, cert)
    result = sync(engine, SalesforceSource(client), SystemClock())
    assert result.accepted == 2 + 7 and result.malformed == 0
    assert result.pages >= 1 + 3  # Accounts in one page, 7 won deals in pages of 3
    assert stored(engine, "opportunity:") == opp_ids(org)
    assert len(stored(engine, "account:")) == 2
    deal = next(r for r in org.objects["Opportunity"].values() if r["Name"] == "Deal 1")
    event = payload(engine, f"opportunity:{deal['Id']}:{format_stamp_of(deal)}")
    assert event["type"] == "opportunity.closed_won"
    data = event["data"]
    assert data["opportunity"]["amount"].startswith("120000")
    assert data["customer"] == {**data["customer"], "id": first, "name": "Globex 1",
                                "billing_country": "US", "tax_id": "TX-1", "currency": "USD",
                                "legal_entity": "US01"}
    assert data["contract"]["billing_model"] == "time_and_materials"
    assert data["contract"]["end"] == "2026-12-31"
    assert data["project"]["code"] == "GLX-001"
    # Polling again from the stored cursor stores nothing new.
    again = sync(engine, SalesforceSource(client), SystemClock())
    assert again.accepted == 0 and again.duplicates >= 2
    assert client.requests < 20


def test_an_amount_with_more_digits_than_a_float_holds_reaches_the_event_exactly(
        engine: Engine, org: SalesforceEmulator, cert: tuple[str, str]) -> None:
    """Opportunity.Amount is a JSON number; the client reads it as Decimal, so
    a float's rounding (922337203685477.6) never reaches the canonical event."""
    acc = org.seed({"Account": [account(1)]})["Account"][0]
    amount = Decimal("922337203685477.5807")
    made = org.seed({"Opportunity": [opportunity(acc, 1, Amount=amount)]})["Opportunity"][0]
    deal = org.objects["Opportunity"][made]
    result = sync(engine, SalesforceSource(make_client(org, cert)), SystemClock())
    assert result.accepted == 2 and result.malformed == 0
    event = payload(engine, f"opportunity:{deal['Id']}:{format_stamp_of(deal)}")
    assert event["data"]["opportunity"]["amount"] == "922337203685477.5807"


def test_records_sharing_the_cursor_instant_are_neither_skipped_nor_doubled(
        engine: Engine, org: SalesforceEmulator, cert: tuple[str, str]) -> None:
    acc = org.seed({"Account": [account(1)]})["Account"][0]
    for i in range(7):
        org.upsert_record("Opportunity", opportunity(acc, i), modstamp=SAME_INSTANT)
    for i in range(7, 10):
        org.upsert_record("Opportunity", opportunity(acc, i))
    source = SalesforceSource(make_client(org, cert), objects=("Opportunity",))
    assert sync(engine, source, SystemClock()).accepted == 10
    assert stored(engine) == opp_ids(org)
    # A record committed later with the very instant the cursor holds is still read.
    cursor = decode_cursor(sync(engine, source, SystemClock()).cursor)["Opportunity"]
    late = org.upsert_record("Opportunity", opportunity(acc, 50), modstamp=cursor)
    again = sync(engine, source, SystemClock())
    assert again.accepted == 1 and again.duplicates >= 1
    assert f"opportunity:{late['Id']}:{cursor}" in stored(engine)


def test_an_interrupted_poll_resumes_from_its_last_stored_page(
        engine: Engine, org: SalesforceEmulator, cert: tuple[str, str]) -> None:
    acc = org.seed({"Account": [account(1)]})["Account"][0]
    for i in range(9):
        org.upsert_record("Opportunity", opportunity(acc, i))
    client = make_client(org, cert, access_token="session-1", instance_url=org.url)
    source = SalesforceSource(client, objects=("Opportunity",))
    org.faults.script(["ok", "ok", "503"])  # the third page fails
    with pytest.raises(TransientError):
        sync(engine, source, SystemClock())
    with engine.connect() as conn:
        cursor = decode_cursor(load_cursor(conn, "salesforce", "default"))
    ordered = sorted(org.objects["Opportunity"].values(), key=lambda r: r["SystemModstamp"])
    assert cursor["Opportunity"] == format_stamp_of(ordered[5])
    assert len(stored(engine)) == 6
    sync(engine, source, SystemClock())
    assert stored(engine) == opp_ids(org)


def test_pagination_that_repeats_itself_stops_with_an_error(
        org: SalesforceEmulator, cert: tuple[str, str]) -> None:
    acc = org.seed({"Account": [account(1)]})["Account"][0]
    for i in range(4):
        org.upsert_record("Opportunity", opportunity(acc, i))
    original = org._page

    def stuck(rows: list[dict[str, Any]], start: int, size: int, locator: str,
              version: str) -> Response:
        return original(rows, 0, size, locator, version)  # always the first page again

    org._page = stuck  # type: ignore[method-assign]
    client = make_client(org, cert, batch_size=2)
    with pytest.raises(PermanentError, match="stopping instead of looping"):
        list(client.query_pages("SELECT Id FROM Opportunity ORDER BY SystemModstamp, Id"))
    assert client.requests <= 4


def _hub(engine: Engine, receiver: SalesforceOutboundMessages) -> HubServer:
    hub = Hub(engine, {"ledger": FakeTarget()})
    server = HubServer(hub, port=0, webhooks={"salesforce": receiver})
    server.start()
    return server


def test_outbound_messages_good_wrong_org_bad_token_and_stale(
        engine: Engine, org: SalesforceEmulator, cert: tuple[str, str]) -> None:
    acc = org.seed({"Account": [account(1)]})["Account"][0]
    deal = org.upsert_record("Opportunity", opportunity(acc, 1))
    receiver = SalesforceOutboundMessages(org.org_id, client=make_client(org, cert),
                                          secret="hook-token")
    server = _hub(engine, receiver)
    url = f"{server.url}/v1/webhooks/salesforce"
    stale = format_stamp_from(time.time() - 3 * 24 * 3600)
    try:
        good = org.send_outbound_message(f"{url}?token=hook-token", "Opportunity", [deal["Id"]])
        wrong_org = org.send_outbound_message(f"{url}?token=hook-token", "Opportunity",
                                              [deal["Id"]], org_id="00D5g000000XXXXAAA")
        bad_token = org.send_outbound_message(f"{url}?token=guess", "Opportunity", [deal["Id"]])
        no_token = org.send_outbound_message(url, "Opportunity", [deal["Id"]])
        old = org.send_outbound_message(f"{url}?token=hook-token", "Opportunity",
                                        [deal["Id"]], override={"SystemModstamp": stale})
        by_header = org.send_outbound_message(url, "Opportunity", [deal["Id"]],
                                              headers={"X-Billbridge-Token": "hook-token"})
    finally:
        server.stop()
    statuses = [r[0].status_code for r in (good, wrong_org, bad_token, no_token, old, by_header)]
    assert statuses == [200, 401, 401, 401, 401, 200]
    assert good[0].headers["content-type"].startswith("text/xml")
    assert b"<Ack>true</Ack>" in good[0].content
    assert "not the configured org" in wrong_org[0].json()["message"]
    assert "does not match" in bad_token[0].json()["message"]
    assert "not authenticated" in no_token[0].json()["message"]
    assert "stale" in old[0].json()["message"]
    assert stored(engine, "opportunity:") == [f"opportunity:{deal['Id']}:{format_stamp_of(deal)}"]


def format_stamp_from(epoch: float) -> str:
    from datetime import UTC, datetime

    return format_stamp(datetime.fromtimestamp(epoch, UTC))


def test_a_message_twice_out_of_order_and_the_poll_of_one_change_store_one_event(
        engine: Engine, org: SalesforceEmulator, cert: tuple[str, str]) -> None:
    acc = org.seed({"Account": [account(1)]})["Account"][0]
    deal = org.upsert_record("Opportunity", opportunity(acc, 1, Amount=1000.0))
    earlier = format_stamp_of(deal)
    current = org.upsert_record("Opportunity", {"Id": deal["Id"], "Amount": 2000.0})
    client = make_client(org, cert)
    server = _hub(engine, SalesforceOutboundMessages(org.org_id, client=client))
    url = f"{server.url}/v1/webhooks/salesforce"
    try:
        twice = org.send_outbound_message(url, "Opportunity", [deal["Id"]], duplicate=True)
        # The message about the earlier change arrives last: it reads the record as it is now.
        late = org.send_outbound_message(url, "Opportunity", [deal["Id"]],
                                         override={"SystemModstamp": earlier})
        result = sync(engine, SalesforceSource(client, objects=("Opportunity",)), SystemClock())
    finally:
        server.stop()
    assert [r.status_code for r in [*twice, *late]] == [200, 200, 200]
    assert result.accepted == 0 and result.duplicates == 1
    event_id = f"opportunity:{deal['Id']}:{format_stamp_of(current)}"
    assert stored(engine, "opportunity:") == [event_id]
    assert payload(engine, event_id)["data"]["opportunity"]["amount"].startswith("2000")


def test_a_spent_daily_allocation_defers_work_without_a_request(
        org: SalesforceEmulator, cert: tuple[str, str]) -> None:
    org.api_limit = 10
    org.api_usage = 9
    client = make_client(org, cert)
    client.query_all("SELECT Id FROM Account")  # the last call: api-usage=10/10
    assert client.quota.remaining == 0 and client.quota.limit == 10
    calls = client.requests
    with pytest.raises(TransientError) as deferred:
        client.query_all("SELECT Id FROM Account")
    assert deferred.value.code == QUOTA_EXHAUSTED and deferred.value.retry_after
    assert client.requests == calls and org.api_usage == 10
    # A client that has not seen the header meets Salesforce's 403 REQUEST_LIMIT_EXCEEDED.
    fresh = make_client(org, cert)
    with pytest.raises(TransientError) as refused:
        fresh.query_all("SELECT Id FROM Account")
    assert refused.value.code == QUOTA_EXHAUSTED and "REQUEST_LIMIT_EXCEEDED" in str(
        refused.value)
    before = fresh.requests
    with pytest.raises(TransientError, match="quota is spent"):
        SalesforceTarget(fresh).send([OutboundCommand(
            1, "salesforce", "crm.account.upsert", "k1", "customer:1",
            {"object": "Account", "external_id_field": "ERP_Id__c", "external_id": "C-1",
             "fields": {"Name": "x"}})])
    assert fresh.requests == before
    # Once the wait is over the client asks again and learns the new figure.
    client.quota.resets_at = client.quota.clock.monotonic() - 1
    org.api_limit = 100
    client.query_all("SELECT Id FROM Account")
    assert client.quota.remaining == 89


def test_an_expired_session_is_refreshed_once_and_the_call_retried(
        org: SalesforceEmulator, cert: tuple[str, str]) -> None:
    org.seed({"Account": [account(1)]})
    client = make_client(org, cert, access_token="session-1", instance_url=org.url)
    assert len(client.query_all("SELECT Id, Name FROM Account")) == 1
    org.expire_sessions()
    assert len(client.query_all("SELECT Id, Name FROM Account")) == 1
    assert org.token_grants == 1
    bad = make_client(org, cert, access_token="nope", instance_url=org.url)
    bad.refresh_token = "revoked"
    with pytest.raises(PermanentError) as failed:
        bad.query_all("SELECT Id FROM Account")
    assert failed.value.code == "TARGET_AUTH"


def command(n: int, external_id: str, fields: dict[str, Any], *, sobject: str = "Account",
            field: str = "ERP_Id__c", kind: str = "crm.account.upsert") -> OutboundCommand:
    return OutboundCommand(n, "salesforce", kind, f"key-{n}", f"customer:{external_id}",
                           {"object": sobject, "external_id_field": field,
                            "external_id": external_id, "fields": fields})


def test_write_back_upserts_by_external_id_with_per_record_results(
        org: SalesforceEmulator, cert: tuple[str, str]) -> None:
    acc = org.seed({"Account": [account(1, ERP_Id__c="C-1"), account(2, ERP_Id__c="DUP"),
                                account(3, ERP_Id__c="DUP")]})["Account"]
    deal = org.upsert_record("Opportunity", opportunity(acc[0], 1))
    org.reject_if = lambda sobject, fields: ("Name", "Name is required") \
        if fields.get("Name") == "" else None
    target = SalesforceTarget(make_client(org, cert))
    batch = [command(1, "C-1", {"Name": "Globex One"}),
             command(2, "C-2", {"Name": "Initech"}),
             command(3, "C-3", {"Name": ""}),
             command(4, "DUP", {"Name": "Twice"}),
             OutboundCommand(5, "salesforce", "crm.account.upsert", "key-5", "x", {"fields": {}})]
    results = {r.idempotency_key: r for r in target.send(batch)}
    assert results["key-1"].status is ResultStatus.APPLIED
    assert results["key-1"].external_id == acc[0]
    assert results["key-2"].status is ResultStatus.APPLIED
    assert results["key-3"].status is ResultStatus.REJECTED
    assert results["key-3"].code == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert results["key-4"].status is ResultStatus.REJECTED
    assert results["key-5"].code == "INVALID_COMMAND"
    assert org.record("Account", acc[0])["Name"] == "Globex One"
    count = len(org.objects["Account"])
    # Delivering the same batch again writes the same records, never twins.
    assert {r.status for r in target.send(batch[:2])} == {ResultStatus.APPLIED}
    assert len(org.objects["Account"]) == count
    # By record id: sObject Collections update, which creates nothing.
    by_id = target.send([
        command(6, deal["Id"], {"ERP_Project_Id__c": "P-77", "Invoice_Status__c": "issued"},
                sobject="Opportunity", field="Id", kind="crm.opportunity.update"),
        command(9, "006000000000000AAA", {"Invoice_Status__c": "paid"}, sobject="Opportunity",
                field="Id", kind="crm.opportunity.update")])
    assert by_id[0].status is ResultStatus.APPLIED and by_id[0].external_id == deal["Id"]
    assert by_id[1].status is ResultStatus.REJECTED and by_id[1].code == "RECORD_NOT_FOUND"
    assert "006000000000000AAA" not in org.objects["Opportunity"]
    assert org.record("Opportunity", deal["Id"])["ERP_Project_Id__c"] == "P-77"
    # One command alone goes to PATCH /sobjects/{object}/{field}/{value}; without
    # "object" the kind names it.
    alone = OutboundCommand(10, "salesforce", "crm.account.upsert", "key-10", "customer:C-1",
                            {"external_id_field": "ERP_Id__c", "external_id": "C-1",
                             "fields": {"Invoice_Status__c": "issued"}})
    assert target.send([alone])[0].external_id == acc[0]
    assert org.record("Account", acc[0])["Invoice_Status__c"] == "issued"
    several = target.send([command(7, "DUP", {"Name": "Again"})])
    assert several[0].status is ResultStatus.REJECTED and several[0].code == "MULTIPLE_MATCHES"
    created = target.send([command(8, "C-9", {"Name": "Hooli"})])
    assert created[0].status is ResultStatus.APPLIED
    assert org.objects["Account"][str(created[0].external_id)]["ERP_Id__c"] == "C-9"


def writeback(n: int, record: str, **fields: Any) -> OutboundCommand:
    return OutboundCommand(n, "salesforce", "crm.writeback", f"wb-{n}", f"activation:{n}",
                           {"system": "salesforce", "record": record, "fields": fields})


def test_crm_writeback_lands_on_the_opportunity_fields_of_the_writeback_map(
        org: SalesforceEmulator, cert: tuple[str, str]) -> None:
    acc = org.seed({"Account": [account(1)]})["Account"][0]
    one, two, gone = org.seed({"Opportunity": [opportunity(acc, i) for i in (1, 2, 3)]}
                              )["Opportunity"]
    org.delete("Opportunity", gone)
    account_before = org.record("Account", acc)
    client = make_client(org, cert)
    target = SalesforceTarget(client)
    client.refresh()
    calls = client.requests
    results = {r.idempotency_key: r for r in target.send([
        writeback(2, gone, erp_project_id="P-3"),
        writeback(1, one, erp_project_id="P-1", erp_customer_id="C-1", project_code="GLX-001"),
        writeback(3, two, invoice="inv_GLX-002_2026-03-31", invoice_status="issued",
                  invoice_total="2525.00"),
        writeback(4, two, invoice_status="paid", invoice_total=None),
        writeback(5, one, colour="blue")])}
    assert {k: (r.status, r.code) for k, r in results.items()} == {
        "wb-1": (ResultStatus.APPLIED, None), "wb-2": (ResultStatus.REJECTED, "RECORD_NOT_FOUND"),
        "wb-3": (ResultStatus.APPLIED, None), "wb-4": (ResultStatus.APPLIED, None),
        "wb-5": (ResultStatus.REJECTED, "INVALID_COMMAND")}
    assert f"no Opportunity {gone} in Salesforce" in str(results["wb-2"].message)
    assert "colour" in str(results["wb-5"].message)
    # Two Collections calls: the second write to one Opportunity goes after the first.
    assert client.requests - calls == 2
    first, second = org.record("Opportunity", one), org.record("Opportunity", two)
    assert (first["BillBridge_ERP_Project_Id__c"], first["BillBridge_ERP_Customer_Id__c"],
            first["BillBridge_Project_Code__c"]) == ("P-1", "C-1", "GLX-001")
    assert (second["BillBridge_Last_Invoice__c"], second["BillBridge_Invoice_Status__c"],
            second["BillBridge_Invoice_Total__c"]) == ("inv_GLX-002_2026-03-31", "paid",
                                                        "2525.00")
    assert gone not in org.objects["Opportunity"] and len(org.objects["Opportunity"]) == 2
    assert org.record("Account", acc) == account_before
    # Sent again (a lost acknowledgement): the same values, no new record.
    again = target.send([writeback(1, one, erp_project_id="P-1", erp_customer_id="C-1")])
    assert again[0].status is ResultStatus.APPLIED and len(org.objects["Opportunity"]) == 2


def test_a_writeback_map_and_key_of_the_firm_write_by_external_id_in_one_call_of_200(
        org: SalesforceEmulator, cert: tuple[str, str]) -> None:
    acc = org.seed({"Account": [account(1)]})["Account"][0]
    ids = org.seed({"Opportunity": [opportunity(acc, i, Legacy_Id__c=f"L-{i}")
                                    for i in range(201)]})["Opportunity"]
    client = make_client(org, cert)
    target = SalesforceTarget(client, writeback={"erp_project_id": "ERP_Project__c"},
                              writeback_key="Legacy_Id__c")
    client.refresh()
    calls = client.requests
    results = target.send([writeback(i, f"L-{i}", erp_project_id=f"P-{i}",
                                     invoice_status="issued") for i in range(201)])
    assert {r.status for r in results} == {ResultStatus.APPLIED}
    assert client.requests - calls == 2  # 200, then 1
    for i in (0, 137, 200):
        record = org.record("Opportunity", ids[i])
        assert record["ERP_Project__c"] == f"P-{i}"
        assert "BillBridge_Invoice_Status__c" not in record  # not in this firm's map
    assert len(org.objects["Opportunity"]) == 201


def test_a_mapping_mistake_is_stored_malformed_with_its_raw_record(
        engine: Engine, org: SalesforceEmulator, cert: tuple[str, str]) -> None:
    acc = org.seed({"Account": [account(1)]})["Account"][0]
    good = org.upsert_record("Opportunity", opportunity(acc, 1))
    bad = org.upsert_record("Opportunity", opportunity(acc, 2, Project_Code__c=None))
    source = SalesforceSource(make_client(org, cert), objects=("Opportunity",))
    items = [e for page in source.poll(None) for e in page.events]
    problem = next(e for e in items if isinstance(e, Malformed))
    assert problem.raw["Id"] == bad["Id"]
    assert f"Opportunity {bad['Id']}" in problem.reason
    assert "project.code (field Project_Code__c)" in problem.reason
    result = sync(engine, source, SystemClock())
    assert result.accepted == 1 and result.malformed == 1
    with engine.connect() as conn:
        raw = conn.execute(select(inbox.c.raw).where(inbox.c.status == "failed")).scalar()
    assert bad["Id"] in str(raw)
    assert f"opportunity:{good['Id']}:{format_stamp_of(good)}" in stored(engine)


def test_the_emulator_answers_soql_errors_as_salesforce_error_arrays(
        org: SalesforceEmulator, cert: tuple[str, str]) -> None:
    client = make_client(org, cert)
    with pytest.raises(PermanentError) as failed:
        client.query_all("SELEKT nonsense")
    assert failed.value.code == "MALFORMED_QUERY"
    with pytest.raises(PermanentError) as unknown:
        client.get("Opportunity", "006000000000000AAA")
    assert unknown.value.code == "NOT_FOUND"
