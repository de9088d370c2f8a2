"""The HubSpot connector against its emulator over real HTTP: polling won
deals into the inbox, webhooks, rate limits and the daily quota, write-back."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select

from billbridge.connectors.base import (
    Connection,
    OutboundCommand,
    PermanentError,
    RateLimit,
    ResultStatus,
    TransientError,
)
from billbridge.connectors.hubspot import CONNECTOR
from billbridge.connectors.hubspot.client import HubSpotClient, hubspot_rate_limit
from billbridge.connectors.hubspot.emulator import HubSpotEmulator
from billbridge.connectors.hubspot.mapping import MappingConfig, to_ms
from billbridge.connectors.hubspot.source import HubSpotSource
from billbridge.connectors.hubspot.target import HubSpotTarget
from billbridge.connectors.hubspot.webhooks import HubSpotWebhooks
from billbridge.connectors.ratelimit import QUOTA_EXHAUSTED
from billbridge.engine.clock import SystemClock
from billbridge.engine.hub import Hub
from billbridge.engine.sync import load_cursor, sync
from billbridge.store.tables import exceptions, inbox
from billbridge.web import HubServer
from fakes import FakeTarget

TOKEN = "hubspot-token"
SECRET = "app-client-secret"
SAME_INSTANT = "2026-03-05T10:00:00.000Z"
FAST = RateLimit(1000, 1, burst=1000)


@pytest.fixture
def hubspot() -> Iterator[HubSpotEmulator]:
    with HubSpotEmulator(token=TOKEN) as emulator:
        yield emulator  # type: ignore[misc]


def client(emulator: HubSpotEmulator, **kwargs: Any) -> HubSpotClient:
    kwargs.setdefault("rate_limit", FAST)
    kwargs.setdefault("search_rate_limit", FAST)
    kwargs.setdefault("access_token", TOKEN)
    return HubSpotClient(emulator.url, **kwargs)


def source(emulator: HubSpotEmulator, page_size: int = 3, **kwargs: Any) -> HubSpotSource:
    return HubSpotSource(client(emulator, **kwargs), page_size=page_size)


def company(i: int, **props: Any) -> dict[str, Any]:
    return {"id": str(500 + i), "properties": {"name": f"Company {i}", "country": "US",
                                               "tax_id": f"US-{i:02d}", "domain": f"c{i}.com",
                                               **props}}


def deal(i: int, stage: str = "closedwon", **props: Any) -> dict[str, Any]:
    return {"id": str(i), "properties": {
        "dealname": f"Deal {i}", "amount": "50000.00", "closedate": "2026-03-01T09:00:00Z",
        "dealstage": stage, "pipeline": "default", "deal_currency_code": "USD",
        "billing_model": "time_and_materials", "legal_entity": "US01",
        "contract_start": "2026-03-01", "contract_end": "2026-12-31",
        "rate_card": "rc-standard", "project_code": f"PRJ-{i:03d}", **props}}


def seed(emulator: HubSpotEmulator, deals: list[dict[str, Any]]) -> None:
    emulator.seed(companies=[company(int(d["id"])) for d in deals], deals=deals,
                  associations=[(d["id"], str(500 + int(d["id"]))) for d in deals])


def event_id(emulator: HubSpotEmulator, deal_id: str) -> str:
    stamp = to_ms(emulator.get("deals", deal_id)["properties"]["hs_lastmodifieddate"])
    return f"deal:{deal_id}:{stamp}"


def stored(engine: Engine) -> list[str]:
    """Inbox event ids from HubSpot (the hub adds its own ``posting.confirmed``)."""
    with engine.connect() as conn:
        return sorted(conn.execute(select(inbox.c.event_id)
                                   .where(inbox.c.source == "hubspot")).scalars())


def payloads(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(inbox.c.event_id, inbox.c.payload)
                            .where(inbox.c.status != "failed")).all()
    return {r.event_id: json.loads(r.payload) for r in rows}


# -- polling ----------------------------------------------------------------------
def test_poll_stores_one_closed_won_event_per_won_deal_with_mapped_fields(
        engine: Engine, hubspot: HubSpotEmulator) -> None:
    won = [deal(i) for i in range(1, 8)]
    others = [deal(i, stage="qualifiedtobuy") for i in range(8, 11)]
    seed(hubspot, won + others)
    result = sync(engine, source(hubspot, page_size=3), SystemClock())
    expected = sorted(event_id(hubspot, str(i)) for i in range(1, 8))
    assert stored(engine) == expected
    assert result.accepted == 7 and result.malformed == 0 and result.pages >= 4
    event = payloads(engine)[event_id(hubspot, "3")]
    assert event["type"] == "opportunity.closed_won" and event["source"] == "hubspot"
    data = event["data"]
    assert data["opportunity"] == {"id": "3", "customer": "503", "name": "Deal 3",
                                   "amount": "50000.00", "currency": "USD",
                                   "stage": "closed_won", "close_date": "2026-03-01"}
    assert data["customer"]["id"] == "503" and data["customer"]["tax_id"] == "US-03"
    assert data["customer"]["billing_country"] == "US"
    assert data["contract"]["billing_model"] == "time_and_materials"
    assert data["contract"]["rate_card"] == "rc-standard"
    assert (data["contract"]["start"], data["contract"]["end"]) == ("2026-03-01", "2026-12-31")
    assert data["project"]["code"] == "PRJ-003"
    # Re-polling the overlapping window stores nothing new.
    hubspot.update("deals", "9", amount="1.00")  # a non-won change after a won one
    again = sync(engine, source(hubspot, page_size=3), SystemClock())
    assert again.accepted == 0 and again.pages == 1
    assert stored(engine) == expected


def test_deals_sharing_the_cursor_stamp_across_pages_are_neither_skipped_nor_doubled(
        engine: Engine, hubspot: HubSpotEmulator) -> None:
    same = [deal(i, hs_lastmodifieddate=SAME_INSTANT) for i in range(1, 8)]
    seed(hubspot, same + [deal(i) for i in range(8, 11)])
    result = sync(engine, source(hubspot, page_size=3), SystemClock())
    assert result.accepted == 10
    assert stored(engine) == sorted(event_id(hubspot, str(i)) for i in range(1, 11))
    again = sync(engine, source(hubspot, page_size=3), SystemClock())
    assert again.accepted == 0


def test_an_edit_during_the_poll_cannot_hide_another_deal(hubspot: HubSpotEmulator) -> None:
    seed(hubspot, [deal(i) for i in range(1, 7)])
    pages = source(hubspot, page_size=2).poll(None)
    first = next(pages)
    hubspot.update("deals", "1", amount="60000.00")  # deal 1 moves to the end
    ids = {e["id"] for p in [first, *pages] for e in p.events}
    assert {event_id(hubspot, str(i)) for i in range(2, 7)} <= ids
    assert event_id(hubspot, "1") in ids


def test_an_interrupted_poll_resumes_from_its_last_committed_page(
        engine: Engine, hubspot: HubSpotEmulator) -> None:
    seed(hubspot, [deal(i) for i in range(1, 10)])

    class FailsOnThirdSearch(HubSpotClient):
        calls = 0

        def search_modified_since(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            FailsOnThirdSearch.calls += 1
            if FailsOnThirdSearch.calls == 3:
                raise TransientError("connection reset")
            return super().search_modified_since(*args, **kwargs)

    flaky = HubSpotSource(FailsOnThirdSearch(hubspot.url, access_token=TOKEN,
                                             rate_limit=FAST, search_rate_limit=FAST),
                         page_size=3)
    with pytest.raises(TransientError):
        sync(engine, flaky, SystemClock())
    with engine.connect() as conn:
        cursor = load_cursor(conn, "hubspot", "default")
    # Pages 1 (deals 1-3) and 2 (3-5, asked again from deal 3's stamp) are stored.
    assert cursor == str(to_ms(hubspot.get("deals", "5")["properties"]["hs_lastmodifieddate"]))
    assert len(stored(engine)) == 5
    searches = len(hubspot.requests_to("/crm/v3/objects/deals/search"))
    sync(engine, source(hubspot, page_size=3), SystemClock())
    assert stored(engine) == sorted(event_id(hubspot, str(i)) for i in range(1, 10))
    # The resumed poll started at deal 5, not at the beginning.
    assert len(hubspot.requests_to("/crm/v3/objects/deals/search")) - searches <= 3


def test_pagination_that_repeats_itself_stops_with_an_error(hubspot: HubSpotEmulator) -> None:
    seed(hubspot, [deal(i, hs_lastmodifieddate=SAME_INSTANT) for i in range(1, 6)])

    class IgnoresAfter(HubSpotClient):
        def search_modified_since(self, object_type: str, since_ms: int, *,
                                  properties: Any, after: str | None = None,
                                  limit: int = 100) -> dict[str, Any]:
            return super().search_modified_since(object_type, since_ms,
                                                 properties=properties, limit=limit)

    stuck = HubSpotSource(IgnoresAfter(hubspot.url, access_token=TOKEN, rate_limit=FAST,
                                       search_rate_limit=FAST), page_size=2)
    with pytest.raises(PermanentError, match="stopping instead of looping"):
        list(stuck.poll(str(to_ms(SAME_INSTANT))))


def test_the_search_result_cap_is_never_reached_by_keyset_paging(
        engine: Engine, hubspot: HubSpotEmulator) -> None:
    hubspot.search_cap = 4  # stands for HubSpot's 10,000
    seed(hubspot, [deal(i) for i in range(1, 13)])
    result = sync(engine, source(hubspot, page_size=3), SystemClock())
    assert result.accepted == 12
    assert all(r[3] == 200 for r in hubspot.requests_to())


def test_more_deals_at_one_instant_than_the_search_cap_stop_with_a_clear_error(
        hubspot: HubSpotEmulator) -> None:
    hubspot.search_cap = 4
    seed(hubspot, [deal(i, hs_lastmodifieddate=SAME_INSTANT) for i in range(1, 8)])
    poller = HubSpotSource(client(hubspot), page_size=2, search_cap=4)
    with pytest.raises(PermanentError, match="share hs_lastmodifieddate"):
        list(poller.poll(None))


def test_unmappable_deals_become_malformed_with_a_clear_reason_and_the_raw_deal(
        engine: Engine, hubspot: HubSpotEmulator) -> None:
    seed(hubspot, [deal(1, amount=""), deal(2, dealstage="mystery"), deal(3)])
    hubspot.seed(deals=[deal(4)])  # won, but no associated company
    result = sync(engine, source(hubspot), SystemClock())
    assert result.accepted == 1 and result.malformed == 3
    with engine.connect() as conn:
        messages = sorted(conn.execute(select(exceptions.c.message)).scalars())
        raws = list(conn.execute(select(exceptions.c.raw)).scalars())
    assert any("HubSpot deal 1: missing opportunity.amount (property 'amount')" in m
               for m in messages)
    assert any("HubSpot deal 2: dealstage 'mystery' is not a stage of pipeline 'default'" in m
               for m in messages)
    assert any("HubSpot deal 4: no associated company" in m for m in messages)
    assert any('"dealname": "Deal 1"' in r for r in raws)


# -- webhooks ---------------------------------------------------------------------
@pytest.fixture
def hub_server(engine: Engine, hubspot: HubSpotEmulator) -> Iterator[HubServer]:
    receiver = HubSpotWebhooks(SECRET, client(hubspot))
    server = HubServer(Hub(engine, {"ledger": FakeTarget()}), port=0,
                       webhooks={"hubspot": receiver})
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_webhooks_with_good_bad_and_stale_signatures(
        engine: Engine, hubspot: HubSpotEmulator, hub_server: HubServer) -> None:
    seed(hubspot, [deal(1)])
    url = f"{hub_server.url}/v1/webhooks/hubspot"
    note = {"subscriptionType": "deal.propertyChange", "objectId": 1,
            "propertyName": "dealstage", "propertyValue": "closedwon"}
    good = hubspot.send_webhooks(url, [note], client_secret=SECRET)
    forged = hubspot.send_webhooks(url, [note], client_secret="wrong")
    stale = hubspot.send_webhooks(url, [note], client_secret=SECRET,
                                  timestamp_ms=int((time.time() - 301) * 1000))
    future = hubspot.send_webhooks(url, [note], client_secret=SECRET,
                                   timestamp_ms=int((time.time() + 400) * 1000))
    assert [r.status_code for r in (good, forged, stale, future)] == [202, 401, 401, 401]
    assert "does not match" in forged.json()["message"]
    assert "stale" in stale.json()["message"] and "future" in future.json()["message"]
    assert stored(engine) == [event_id(hubspot, "1")]


def test_a_webhook_and_a_poll_of_one_change_store_one_event(
        engine: Engine, hubspot: HubSpotEmulator, hub_server: HubServer) -> None:
    seed(hubspot, [deal(1), deal(2, stage="contractsent")])
    url = f"{hub_server.url}/v1/webhooks/hubspot"
    answer = hubspot.send_webhooks(url, [
        {"subscriptionType": "deal.propertyChange", "objectId": 1,
         "propertyName": "dealstage", "propertyValue": "closedwon"},
        {"subscriptionType": "deal.creation", "objectId": 2},
        {"subscriptionType": "deal.deletion", "objectId": 99},
        {"subscriptionType": "company.propertyChange", "objectId": 501,
         "propertyName": "name", "propertyValue": "Company 1"}], client_secret=SECRET)
    assert answer.status_code == 202, answer.text
    result = sync(engine, source(hubspot), SystemClock())
    assert result.accepted == 0 and result.duplicates == 1
    ids = stored(engine)
    assert event_id(hubspot, "1") in ids and len(ids) == 2  # the deal and company 501
    # The company had no currency of its own: it is malformed without a default.
    assert any(i.startswith("company:501:") for i in ids)


def test_a_webhook_answers_503_when_hubspot_cannot_be_reached(
        engine: Engine, hubspot: HubSpotEmulator, hub_server: HubServer) -> None:
    seed(hubspot, [deal(1)])
    hubspot.faults.script(["503"])
    answer = hubspot.send_webhooks(f"{hub_server.url}/v1/webhooks/hubspot",
                                   [{"subscriptionType": "deal.creation", "objectId": 1}],
                                   client_secret=SECRET)
    assert answer.status_code == 503
    assert stored(engine) == []


# -- limits -----------------------------------------------------------------------
def test_a_429_storm_is_ridden_out_without_loss(engine: Engine,
                                                hubspot: HubSpotEmulator) -> None:
    seed(hubspot, [deal(i) for i in range(1, 7)])
    hubspot.faults.script(["429:0"] * 12)
    result = sync(engine, source(hubspot, page_size=2, max_429_retries=20), SystemClock())
    assert result.accepted == 6
    assert sum(1 for r in hubspot.requests_to() if r[3] == 429) == 12


def test_the_client_keeps_within_the_configured_rolling_limit(
        engine: Engine, hubspot: HubSpotEmulator) -> None:
    hubspot.rate_limit, hubspot.window_seconds = 10, 0.5  # stands for 100 / 10 s
    seed(hubspot, [deal(i) for i in range(1, 9)])
    result = sync(engine, source(hubspot, page_size=2,
                                 rate_limit=hubspot_rate_limit(10, 0.5)), SystemClock())
    assert result.accepted == 8
    assert len(hubspot.requests_to()) > 20  # enough calls for the limit to matter
    assert hubspot.max_in_window(0.5) <= 10
    assert all(r[3] == 200 for r in hubspot.requests_to())


def test_an_over_eager_client_is_slowed_by_429s_and_loses_nothing(
        engine: Engine, hubspot: HubSpotEmulator) -> None:
    hubspot.rate_limit, hubspot.window_seconds = 6, 0.5
    seed(hubspot, [deal(i) for i in range(1, 7)])
    result = sync(engine, source(hubspot, page_size=2, max_retry_wait=0.5,
                                 max_429_retries=20), SystemClock())
    assert result.accepted == 6
    assert hubspot.max_in_window(0.5) <= 6 + 1  # answered requests stay within the limit


def test_a_spent_daily_quota_defers_calls_without_sending_them(
        hubspot: HubSpotEmulator) -> None:
    seed(hubspot, [deal(1)])
    hubspot.daily_remaining = 1
    crm = client(hubspot)
    crm.batch_read("deals", ["1"], properties=["dealname"])
    sent = len(hubspot.requests)
    with pytest.raises(TransientError) as raised:
        crm.batch_read("deals", ["1"], properties=["dealname"])
    assert raised.value.code == QUOTA_EXHAUSTED
    assert raised.value.retry_after is not None and 0 < raised.value.retry_after <= 86_460
    assert len(hubspot.requests) == sent  # nothing was sent


def test_the_daily_limit_answer_from_hubspot_is_a_deferral(hubspot: HubSpotEmulator) -> None:
    hubspot.daily_remaining = 0
    with pytest.raises(TransientError) as raised:
        client(hubspot).batch_read("deals", ["1"], properties=["dealname"])
    assert raised.value.code == QUOTA_EXHAUSTED


# -- auth -------------------------------------------------------------------------
def test_an_expired_oauth_token_is_refreshed_once(hubspot: HubSpotEmulator) -> None:
    seed(hubspot, [deal(1)])
    crm = client(hubspot, access_token="expired", refresh_token="refresh-token",
                 client_id="client-id", client_secret="client-secret")
    assert crm.batch_read("deals", ["1"], properties=["dealname"])[0]["id"] == "1"
    assert hubspot.refreshes == 1 and crm.access_token.startswith("oauth-")
    crm.batch_read("deals", ["1"], properties=["dealname"])
    assert hubspot.refreshes == 1
    with pytest.raises(PermanentError) as raised:
        client(hubspot, access_token="wrong").batch_read("deals", ["1"], properties=[])
    assert raised.value.code == "TARGET_AUTH"


# -- write-back -------------------------------------------------------------------
def command(i: int, kind: str, payload: dict[str, Any]) -> OutboundCommand:
    return OutboundCommand(i, "crm", kind, f"key-{i}", f"agg-{i}", payload)


def test_write_back_applies_per_record_and_rejects_unknown_ids(
        hubspot: HubSpotEmulator) -> None:
    seed(hubspot, [deal(1), deal(2)])
    target = HubSpotTarget(client(hubspot), name="crm")
    results = {r.idempotency_key: r for r in target.send([
        command(1, "crm.deal.update", {"id": "1", "properties": {"erp_project_id": "P-1"}}),
        command(2, "crm.deal.update", {"id": "404", "properties": {"erp_project_id": "P-2"}}),
        command(3, "crm.company.update", {"id": "502",
                                          "properties": {"erp_customer_id": "C-2"}}),
        command(4, "crm.writeback", {"system": "hubspot", "record": "2",
                                     "fields": {"erp_project_id": "P-9",
                                                "erp_customer_id": None}}),
        command(5, "crm.deal.update", {"id": "1", "properties": {"invoice_status": "paid"}}),
        command(6, "crm.deal.frobnicate", {"id": "1"}),
    ])}
    assert {k: r.status for k, r in results.items()} == {
        "key-1": ResultStatus.APPLIED, "key-2": ResultStatus.REJECTED,
        "key-3": ResultStatus.APPLIED, "key-4": ResultStatus.APPLIED,
        "key-5": ResultStatus.APPLIED, "key-6": ResultStatus.REJECTED}
    assert results["key-2"].code == "OBJECT_NOT_FOUND"
    assert hubspot.get("deals", "1")["properties"]["erp_project_id"] == "P-1"
    assert hubspot.get("deals", "1")["properties"]["invoice_status"] == "paid"
    assert hubspot.get("deals", "2")["properties"]["erp_project_id"] == "P-9"
    assert hubspot.get("companies", "502")["properties"]["erp_customer_id"] == "C-2"
    # A replay sets the same values again: no change, no new modification stamp.
    before = hubspot.get("deals", "1")["updatedAt"]
    target.send([command(1, "crm.deal.update",
                         {"id": "1", "properties": {"erp_project_id": "P-1"}})])
    assert hubspot.get("deals", "1")["updatedAt"] == before


def test_a_record_hubspot_refuses_does_not_sink_the_batch(hubspot: HubSpotEmulator) -> None:
    seed(hubspot, [deal(1), deal(2)])
    target = HubSpotTarget(client(hubspot))
    results = {r.idempotency_key: r for r in target.send([
        command(1, "crm.deal.update", {"id": "1", "properties": {"hs_object_id": "7"}}),
        command(2, "crm.deal.update", {"id": "2", "properties": {"erp_project_id": "P-2"}}),
    ])}
    assert results["key-1"].status is ResultStatus.REJECTED
    assert "read only" in (results["key-1"].message or "")
    assert results["key-2"].status is ResultStatus.APPLIED


def test_the_connector_spec_builds_from_a_connection(hubspot: HubSpotEmulator) -> None:
    seed(hubspot, [deal(1)])
    connection = Connection("hubspot", "hubspot", hubspot.url,
                            credentials={"access_token": TOKEN, "client_secret": SECRET},
                            options={"page_size": 5, "requests_per_10s": 190})
    assert CONNECTOR.source and CONNECTOR.target and CONNECTOR.webhooks
    pages = list(CONNECTOR.source(connection).poll(None))
    assert [e["id"] for p in pages for e in p.events] == [event_id(hubspot, "1")]
    target = CONNECTOR.target(connection)
    assert target.max_batch == 100 and target.rate_limit.requests + target.rate_limit.burst \
        == 190
    assert isinstance(CONNECTOR.webhooks(connection), HubSpotWebhooks)
    started = time.monotonic()
    crm = HubSpotClient(hubspot.url, access_token=TOKEN)  # default search limit: 4/s
    for _ in range(5):
        crm.search_modified_since("deals", 0, properties=["dealname"], limit=1)
    assert time.monotonic() - started >= 1.0
    assert MappingConfig.from_options({"won_stage": "won", "won_pipeline": "p2"}) \
        .won_stages == {"p2": "won"}


def test_a_429_that_does_not_stop_becomes_a_transient_error(hubspot: HubSpotEmulator) -> None:
    hubspot.faults.script(["429:0"] * 4)
    with pytest.raises(TransientError) as raised:
        client(hubspot, max_429_retries=2).batch_read("deals", ["1"], properties=[])
    assert raised.value.code == "HTTP_429" and "after 2 retries" in str(raised.value)
    assert len(hubspot.requests_to()) == 3


def test_a_refused_refresh_is_a_configuration_error(hubspot: HubSpotEmulator) -> None:
    crm = client(hubspot, access_token="expired", refresh_token="revoked",
                 client_id="client-id", client_secret="client-secret")
    with pytest.raises(PermanentError) as raised:
        crm.batch_read("deals", ["1"], properties=[])
    assert raised.value.code == "TARGET_AUTH" and "BAD_REFRESH_TOKEN" not in str(raised.value)
    assert "unknown refresh token" in str(raised.value)
