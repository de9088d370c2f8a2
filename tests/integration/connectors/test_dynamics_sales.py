"""The Dynamics 365 Sales connector against its Dataverse emulator over real
HTTP: change tracking and modifiedon polling into the inbox (page boundaries,
ties, crashes, endless pages, deletions, expired tokens), webhooks with a
shared key, the service protection limits, tokens, and write-back."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, select

from billbridge.api.routes.ingress import WEBHOOKS_REJECTED
from billbridge.connectors.base import (
    Connection,
    OutboundCommand,
    PermanentError,
    RateLimit,
    ResultStatus,
    TransientError,
)
from billbridge.connectors.dynamics_sales import CONNECTOR
from billbridge.connectors.dynamics_sales.client import DataverseClient
from billbridge.connectors.dynamics_sales.emulator import API, DataverseEmulator
from billbridge.connectors.dynamics_sales.emulator.company import USD, won
from billbridge.connectors.dynamics_sales.emulator.server import (
    CONCURRENCY_CODE,
    EXECUTION_CODE,
    REQUESTS_CODE,
)
from billbridge.connectors.dynamics_sales.source import DynamicsSource
from billbridge.connectors.dynamics_sales.target import DynamicsTarget
from billbridge.connectors.dynamics_sales.webhooks import DynamicsWebhooks
from billbridge.emulation.limits import max_in_window
from billbridge.engine.clock import ManualClock, SystemClock
from billbridge.engine.hub import Hub
from billbridge.engine.sync import load_cursor, sync
from billbridge.store.tables import exceptions, inbox
from billbridge.web import HubServer
from fakes import FakeTarget

TENANT, CLIENT_ID, SECRET = "billbridge-tenant", "billbridge-app", "dataverse-secret"
KEY = "shared-webhook-key"
FAST = RateLimit(1000, 1, burst=1000)
SECOND = "2026-03-05T10:00:00Z"


@contextmanager
def running(**kwargs: Any) -> Iterator[DataverseEmulator]:
    emulator = DataverseEmulator(company=False, **kwargs)
    emulator.seed(transactioncurrencies=[{"transactioncurrencyid": USD,
                                          "isocurrencycode": "USD"}])
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def dataverse() -> Iterator[DataverseEmulator]:
    with running() as emulator:
        yield emulator


def client(emulator: DataverseEmulator, **kwargs: Any) -> DataverseClient:
    kwargs.setdefault("rate_limit", FAST)
    return DataverseClient(emulator.url, tenant=TENANT, client_id=CLIENT_ID,
                           client_secret=SECRET, authority=emulator.url, **kwargs)


def source(emulator: DataverseEmulator, page_size: int = 3, **kwargs: Any) -> DynamicsSource:
    tracking = kwargs.pop("change_tracking", True)
    return DynamicsSource(client(emulator, **kwargs), page_size=page_size,
                          change_tracking=tracking)


def opp_id(i: int) -> str:
    return f"0bb00000-0000-4000-8000-{i:012d}"


def acc_id(i: int) -> str:
    return f"a11ce000-0000-4000-8000-{i:012d}"


def seed(emulator: DataverseEmulator, numbers: range | list[int], **extra: Any) -> None:
    emulator.seed(accounts=[{"accountid": acc_id(i), "name": f"Client {i}",
                             "accountnumber": f"C-{i}", "address1_country": "United States",
                             "_transactioncurrencyid_value": USD} for i in numbers],
                  opportunities=[won(opp_id(i), acc_id(i), f"P-{i:03d}", name=f"Deal {i}",
                                     **extra) for i in numbers])


def event_id(emulator: DataverseEmulator, i: int) -> str:
    return f"opportunity:{opp_id(i)}:{emulator.row('opportunities', opp_id(i))['versionnumber']}"


def stored(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.execute(select(inbox.c.event_id)
                                   .where(inbox.c.source == "dynamics-sales")).scalars())


# -- change tracking -----------------------------------------------------------------
def test_only_won_opportunities_become_closed_won_events_with_their_account(
        engine: Engine, dataverse: DataverseEmulator) -> None:
    seed(dataverse, range(1, 5))
    dataverse.write("opportunities", {"opportunityid": opp_id(2), "statecode": 0,
                                      "statuscode": 1})  # reopened
    dataverse.write("opportunities", {"opportunityid": opp_id(3), "statecode": 2,
                                      "statuscode": 4})  # lost
    result = sync(engine, source(dataverse, page_size=2), SystemClock())
    assert result.accepted == 2 and result.malformed == 0
    assert stored(engine) == sorted([event_id(dataverse, 1), event_id(dataverse, 4)])
    with engine.connect() as conn:
        payload = json.loads(conn.execute(select(inbox.c.payload).where(
            inbox.c.event_id == event_id(dataverse, 1))).scalar_one())
    data = payload["data"]
    assert {k: data["customer"][k] for k in ("id", "name", "currency", "billing_country",
                                             "legal_entity")} == {
        "id": acc_id(1), "name": "Client 1", "currency": "USD", "billing_country": "US",
        "legal_entity": "US01"}
    assert data["opportunity"]["amount"] == "120000.00"
    assert data["contract"]["billing_model"] == "time_and_materials"
    assert data["project"]["code"] == "P-001"
    # Change tracking refuses $filter: no request of the read carried one.
    assert not any("filter" in path for _m, path, _s in dataverse.requests_to(
        f"{API}/opportunities"))


def test_a_money_column_reads_as_the_exact_decimal_dataverse_sent(
        engine: Engine, dataverse: DataverseEmulator) -> None:
    # Dataverse's largest Money value: 19 significant digits, more than a float holds.
    seed(dataverse, [1], amount=Decimal("922337203685477.5807"))
    sync(engine, source(dataverse), SystemClock())
    with engine.connect() as conn:
        payload = json.loads(conn.execute(select(inbox.c.payload).where(
            inbox.c.event_id == event_id(dataverse, 1))).scalar_one())
    assert payload["data"]["opportunity"]["amount"] == "922337203685477.5807"


def test_the_next_poll_follows_the_delta_link_and_reads_only_what_changed(
        engine: Engine, dataverse: DataverseEmulator) -> None:
    seed(dataverse, range(1, 6))
    sync(engine, source(dataverse), SystemClock())
    dataverse.write("opportunities", {"opportunityid": opp_id(3), "actualvalue": Decimal("99.00")})
    before = len(dataverse.requests_to(f"{API}/opportunities"))
    result = sync(engine, source(dataverse), SystemClock())
    assert result.accepted == 1
    assert event_id(dataverse, 3) in stored(engine) and len(stored(engine)) == 6
    assert len(dataverse.requests_to(f"{API}/opportunities")) - before == 1


def test_an_interrupted_read_resumes_at_the_page_it_stopped_on(
        engine: Engine, dataverse: DataverseEmulator) -> None:
    seed(dataverse, range(1, 10))

    class FailsOnThirdPage(DataverseClient):
        calls = 0

        def page(self, url: str, what: str, **kwargs: Any) -> dict[str, Any]:
            if "opportunities" in url:
                FailsOnThirdPage.calls += 1
            if FailsOnThirdPage.calls == 3:
                raise TransientError("connection reset")
            return super().page(url, what, **kwargs)

    flaky = DynamicsSource(FailsOnThirdPage(dataverse.url, tenant=TENANT, client_id=CLIENT_ID,
                                            client_secret=SECRET, authority=dataverse.url,
                                            rate_limit=FAST), page_size=3)
    with pytest.raises(TransientError):
        sync(engine, flaky, SystemClock())
    with engine.connect() as conn:
        cursor = json.loads(load_cursor(conn, "dynamics-sales", "default") or "{}")
    assert "$skiptoken" in cursor["link"] or "%24skiptoken" in cursor["link"]
    assert len(stored(engine)) == 6
    before = len(dataverse.requests_to(f"{API}/opportunities"))
    sync(engine, source(dataverse), SystemClock())
    assert stored(engine) == sorted(event_id(dataverse, i) for i in range(1, 10))
    # Resumed at page three: one page of rows, none read twice.
    assert len(dataverse.requests_to(f"{API}/opportunities")) - before == 1


def test_a_next_link_that_never_moves_on_stops_with_an_error(
        dataverse: DataverseEmulator) -> None:
    seed(dataverse, range(1, 8))
    dataverse.stuck_next_link = True
    with pytest.raises(PermanentError, match="offered twice; stopping instead of looping"):
        list(source(dataverse, page_size=2).poll(None))
    assert len(dataverse.requests_to(f"{API}/opportunities")) <= 3


def test_deleted_rows_are_reported_and_emit_no_event(
        engine: Engine, dataverse: DataverseEmulator) -> None:
    seed(dataverse, range(1, 4))
    sync(engine, source(dataverse), SystemClock())
    dataverse.delete("opportunities", opp_id(2))
    poller = source(dataverse)
    result = sync(engine, poller, SystemClock())
    assert result.accepted == 0 and result.malformed == 0
    assert poller.deleted == [opp_id(2)]
    with engine.connect() as conn:
        assert conn.execute(select(exceptions.c.id)).first() is None


def test_an_expired_delta_token_reads_everything_again_and_stores_each_change_once(
        engine: Engine, dataverse: DataverseEmulator) -> None:
    seed(dataverse, range(1, 6))
    sync(engine, source(dataverse), SystemClock())
    dataverse.write("opportunities", {"opportunityid": opp_id(4), "actualvalue": Decimal("10.00")})
    dataverse.expire_delta_tokens()
    poller = source(dataverse)
    result = sync(engine, poller, SystemClock())
    assert poller.full_reads == 1
    assert any(status == 400 for _m, _p, status in dataverse.requests_to())
    assert result.accepted == 1 and result.duplicates == 4
    assert len(stored(engine)) == 6


# -- modifiedon polling ---------------------------------------------------------------
def test_rows_sharing_one_second_across_pages_are_neither_skipped_nor_doubled(
        engine: Engine, dataverse: DataverseEmulator) -> None:
    dataverse.tracking.clear()  # a table without change tracking
    seed(dataverse, range(1, 8), modifiedon=SECOND)
    result = sync(engine, source(dataverse, page_size=2, change_tracking=False), SystemClock())
    assert result.accepted == 7
    # A row changed later within the same second is read on the next poll.
    dataverse.write("opportunities", {"opportunityid": opp_id(1), "actualvalue": Decimal("1.00")},
                    modifiedon=SECOND)
    again = sync(engine, source(dataverse, page_size=2, change_tracking=False), SystemClock())
    assert again.accepted == 1 and again.duplicates == 6
    assert len(stored(engine)) == 8
    with engine.connect() as conn:
        assert json.loads(load_cursor(conn, "dynamics-sales", "default") or "{}") == \
            {"mode": "modifiedon", "since": SECOND}


def test_unmappable_won_opportunities_become_malformed_with_the_reason(
        engine: Engine, dataverse: DataverseEmulator) -> None:
    seed(dataverse, [1, 2])
    dataverse.write("opportunities", {"opportunityid": opp_id(1), "actualvalue": None})
    dataverse.write("opportunities", {"opportunityid": opp_id(2),
                                      "_parentaccountid_value": acc_id(9)})
    result = sync(engine, source(dataverse), SystemClock())
    assert result.malformed == 2
    with engine.connect() as conn:
        messages = sorted(conn.execute(select(exceptions.c.message)).scalars())
    assert any(f"Dynamics opportunity {opp_id(1)}: missing opportunity.amount (column "
               "actualvalue)" in m for m in messages)
    assert any(f"Dynamics opportunity {opp_id(2)}: no account" in m for m in messages)


# -- webhooks -------------------------------------------------------------------------
@pytest.fixture
def hub_server(engine: Engine, dataverse: DataverseEmulator) -> Iterator[HubServer]:
    receiver = DynamicsWebhooks(KEY, client(dataverse))
    server = HubServer(Hub(engine, {"ledger": FakeTarget()}), port=0,
                       webhooks={"dynamics-sales": receiver})
    server.start()
    try:
        yield server
    finally:
        server.stop()


def refused() -> float:
    return float(WEBHOOKS_REJECTED.labels("dynamics-sales", "signature")._value.get())


def test_webhooks_are_accepted_only_with_the_configured_key_and_refusals_are_counted(
        engine: Engine, dataverse: DataverseEmulator, hub_server: HubServer) -> None:
    seed(dataverse, [1])
    url = f"{hub_server.url}/v1/webhooks/dynamics-sales"
    before = refused()
    missing = dataverse.send_webhook(url, "opportunities", opp_id(1))
    wrong = dataverse.send_webhook(url, "opportunities", opp_id(1), key=KEY + "x")
    wrong_code = dataverse.send_webhook(url, "opportunities", opp_id(1), key="nope",
                                        auth="WebhookKey")
    assert [r.status_code for r in (missing, wrong, wrong_code)] == [401, 401, 401]
    assert "carries no key" in missing.json()["detail"]
    assert "does not match" in wrong.json()["detail"]
    assert refused() - before == 3
    assert stored(engine) == []
    good = dataverse.send_webhook(url, "opportunities", opp_id(1), key=KEY)
    by_code = dataverse.send_webhook(url, "opportunities", opp_id(1), key=KEY,
                                     auth="WebhookKey")
    assert (good.status_code, by_code.status_code) == (202, 202), good.text
    assert stored(engine) == [event_id(dataverse, 1)]


def test_a_webhook_is_read_again_from_the_web_api_not_trusted(
        engine: Engine, dataverse: DataverseEmulator, hub_server: HubServer) -> None:
    seed(dataverse, [1, 2])
    url = f"{hub_server.url}/v1/webhooks/dynamics-sales"
    reads = len(dataverse.requests_to(f"{API}/opportunities({opp_id(1)})"))
    # The context says "won"; the row was reopened since: nothing is stored.
    dataverse.write("opportunities", {"opportunityid": opp_id(2), "statecode": 0})
    dataverse.send_webhook(url, "opportunities", opp_id(2), key=KEY)
    answer = dataverse.send_webhook(url, "opportunities", opp_id(1), key=KEY)
    assert answer.status_code == 202
    assert len(dataverse.requests_to(f"{API}/opportunities({opp_id(1)})")) == reads + 1
    assert stored(engine) == [event_id(dataverse, 1)]
    # A poll of the same change stores nothing new.
    assert sync(engine, source(dataverse), SystemClock()).accepted == 0


def test_a_webhook_answers_503_when_dataverse_cannot_be_reached(
        engine: Engine, dataverse: DataverseEmulator, hub_server: HubServer) -> None:
    seed(dataverse, [1])
    dataverse.faults.script(["503"])
    answer = dataverse.send_webhook(f"{hub_server.url}/v1/webhooks/dynamics-sales",
                                    "opportunities", opp_id(1), key=KEY)
    assert answer.status_code == 503
    assert stored(engine) == []


# -- limits and tokens --------------------------------------------------------------
def test_the_requests_limit_answers_429_and_the_client_waits_it_out() -> None:
    clock = ManualClock()
    with running(requests_limit=4, window_seconds=300,
                           clock=clock.monotonic) as emulator:
        seed(emulator, range(1, 8))
        poller = source(emulator, page_size=2, clock=clock, max_429_retries=10,
                        max_retry_wait=300)
        events = [e for page in poller.poll(None) for e in page.events]
        assert len(events) == 7
        assert emulator.throttled[REQUESTS_CODE] >= 1
        assert max_in_window(emulator.admitted, 300) <= 4
        assert clock.monotonic() >= 300  # the client waited for the window to move on


def test_concurrency_and_execution_time_limits_answer_429_with_their_codes() -> None:
    with running(concurrency_limit=1) as emulator:
        dv = client(emulator, max_429_retries=0)
        dv.access_token()
        emulator.faults.script(["hold:5"])
        slow = threading.Thread(target=lambda: dv.rows_by_id("accounts", "accountid",
                                                            [acc_id(1)], ["name"]))
        slow.start()
        assert emulator.faults.wait_held(5) is not None
        with pytest.raises(TransientError) as raised:
            dv.rows_by_id("accounts", "accountid", [acc_id(2)], ["name"])
        emulator.faults.release()
        slow.join()
        assert "Number of concurrent requests exceeded the limit of 1" in str(raised.value)
        assert emulator.throttled[CONCURRENCY_CODE] == 1
        assert raised.value.retry_after == 1
    with running(execution_ms_limit=100) as emulator:
        emulator.request_cost_ms = 60
        dv = client(emulator, max_429_retries=0)
        dv.rows_by_id("accounts", "accountid", [acc_id(1)], ["name"])
        dv.rows_by_id("accounts", "accountid", [acc_id(1)], ["name"])
        with pytest.raises(TransientError, match="Combined execution time") as raised:
            dv.rows_by_id("accounts", "accountid", [acc_id(1)], ["name"])
        assert emulator.throttled[EXECUTION_CODE] == 1
        assert raised.value.retry_after is not None and raised.value.retry_after > 200


def test_the_token_is_renewed_ahead_of_its_expiry_and_once_on_a_401() -> None:
    clock = ManualClock()
    with running(token_lifetime=600,
                           clock=clock.monotonic) as emulator:
        dv = client(emulator, clock=clock, refresh_margin=300)
        dv.rows_by_id("accounts", "accountid", [acc_id(1)], ["name"])
        clock.advance(250)
        dv.rows_by_id("accounts", "accountid", [acc_id(1)], ["name"])
        assert dv.tokens_fetched == 1
        clock.advance(100)  # 250 s left of 600: inside the margin, renewed before use
        dv.rows_by_id("accounts", "accountid", [acc_id(1)], ["name"])
        assert dv.tokens_fetched == 2
        assert all(status != 401 for _m, _p, status in emulator.requests_to())
        emulator.expire_tokens()
        dv.rows_by_id("accounts", "accountid", [acc_id(1)], ["name"])
        assert dv.tokens_fetched == 3


def test_a_refused_client_secret_is_a_configuration_error(dataverse: DataverseEmulator) -> None:
    bad = DataverseClient(dataverse.url, tenant=TENANT, client_id=CLIENT_ID,
                          client_secret="wrong", authority=dataverse.url)
    with pytest.raises(PermanentError, match="check the tenant, client_id, client_secret"):
        bad.rows_by_id("accounts", "accountid", [acc_id(1)], ["name"])


# -- write-back ---------------------------------------------------------------------
def writeback(n: int, record: str, **fields: Any) -> OutboundCommand:
    return OutboundCommand(n, "dynamics-sales", "crm.writeback", f"k{n}", f"activation:{n}",
                           {"record": record, "fields": fields})


def test_write_back_lands_on_the_opportunity_and_its_account_in_one_batch(
        dataverse: DataverseEmulator) -> None:
    seed(dataverse, [1, 2])
    target = DynamicsTarget(client(dataverse))
    results = target.send([
        writeback(1, opp_id(1), erp_project_id="PRJ-1", erp_customer_id="CUS-1",
                  project_code="P-001"),
        writeback(2, opp_id(2), invoice="inv_1", invoice_status="issued",
                  invoice_total="100.00")])
    assert [r.status for r in results] == [ResultStatus.APPLIED] * 2
    assert dataverse.row("opportunities", opp_id(1))["bb_erpprojectid"] == "PRJ-1"
    assert dataverse.row("accounts", acc_id(1))["bb_erpcustomerid"] == "CUS-1"
    assert dataverse.row("opportunities", opp_id(2))["bb_invoicestatus"] == "issued"
    assert [p for _m, p, _s in dataverse.requests_to(f"{API}/$batch")] == [f"{API}/$batch"]


def test_a_deleted_opportunity_is_not_created_again_and_does_not_sink_the_batch(
        dataverse: DataverseEmulator) -> None:
    seed(dataverse, [1, 2])
    dataverse.delete("opportunities", opp_id(2))
    results = DynamicsTarget(client(dataverse)).send([
        writeback(1, opp_id(2), erp_project_id="PRJ-2"),
        writeback(2, opp_id(1), erp_project_id="PRJ-1")])
    assert results[0].status is ResultStatus.REJECTED and results[0].code == "RECORD_NOT_FOUND"
    assert results[1].status is ResultStatus.APPLIED
    assert opp_id(2) not in {r["opportunityid"] for r in dataverse.all_rows("opportunities")}


def test_a_change_set_is_all_or_none(dataverse: DataverseEmulator) -> None:
    seed(dataverse, [1])
    dataverse.reject_if = lambda table, row: "account is locked" if table == "accounts" \
        else None
    [result] = DynamicsTarget(client(dataverse)).send([
        writeback(1, opp_id(1), erp_project_id="PRJ-1", erp_customer_id="CUS-1")])
    assert result.status is ResultStatus.REJECTED and "account is locked" in str(result.message)
    assert "bb_erpprojectid" not in dataverse.row("opportunities", opp_id(1))


def test_create_only_by_alternate_key_treats_an_existing_record_as_applied(
        dataverse: DataverseEmulator) -> None:
    command = OutboundCommand(1, "dynamics-sales", "crm.account.create", "k1", "a",
                              {"key": {"accountnumber": "NEW-1"}, "fields": {"name": "New"}})
    target = DynamicsTarget(client(dataverse))
    assert target.send([command])[0].status is ResultStatus.APPLIED
    assert target.send([command])[0].status is ResultStatus.APPLIED  # 412: already there
    assert [r["name"] for r in dataverse.all_rows("accounts")
            if r.get("accountnumber") == "NEW-1"] == ["New"]


def test_more_requests_than_one_batch_takes_go_in_several(dataverse: DataverseEmulator) -> None:
    ids = [str(uuid.UUID(int=i)) for i in range(1, 1202)]
    dataverse.seed(opportunities=[{"opportunityid": i, "statecode": 1} for i in ids])
    target = DynamicsTarget(client(dataverse), max_batch=2000)
    results = target.send([writeback(n, i, project_code=f"P{n}") for n, i in enumerate(ids)])
    assert {r.status for r in results} == {ResultStatus.APPLIED}
    assert len(dataverse.requests_to(f"{API}/$batch")) == 2
    assert dataverse.row("opportunities", ids[-1])["bb_projectcode"] == "P1200"


def test_the_connector_spec_builds_from_a_connection(dataverse: DataverseEmulator) -> None:
    seed(dataverse, [1])
    connection = Connection("crm", "dynamics-sales", dataverse.url, credentials={
        "tenant": TENANT, "client_id": CLIENT_ID, "client_secret": SECRET, "webhook_key": KEY},
        options={"authority": dataverse.url, "change_tracking": "false"})
    assert CONNECTOR.source and CONNECTOR.target and CONNECTOR.webhooks
    pages = list(CONNECTOR.source(connection).poll(None))
    assert [e["id"] for p in pages for e in p.events] == [
        f"opportunity:{opp_id(1)}:{dataverse.row('opportunities', opp_id(1))['versionnumber']}"]
    assert CONNECTOR.target(connection).max_batch == 500
