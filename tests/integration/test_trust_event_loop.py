"""Trust boundaries, finding 4: a webhook receiver that reads records back from
its vendor does so off the server's event loop, so one slow vendor delays
only its own deliveries, never /healthz or anybody else's."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from billbridge.connectors.base import RateLimit, WebhookReceiver
from billbridge.connectors.hubspot.client import HubSpotClient
from billbridge.connectors.hubspot.emulator import HubSpotEmulator
from billbridge.connectors.hubspot.webhooks import HubSpotWebhooks
from billbridge.connectors.kantata.client import KantataClient
from billbridge.connectors.kantata.emulator import KantataEmulator
from billbridge.connectors.kantata.webhooks import KantataWebhooks
from billbridge.connectors.salesforce.client import SalesforceClient
from billbridge.connectors.salesforce.emulator import SalesforceEmulator
from billbridge.connectors.salesforce.webhooks import SalesforceOutboundMessages
from billbridge.connectors.tempo.client import TempoClient
from billbridge.connectors.tempo.emulator import TempoEmulator
from billbridge.connectors.tempo.webhooks import TempoWebhooks
from billbridge.emulation.server import EmulatorServer
from billbridge.emulation.tls import self_signed
from billbridge.engine.hub import Hub
from billbridge.web import HubServer
from fakes import FakeTarget

FAST = RateLimit(1000, 1, burst=1000)
SECRET = "door-secret-3c91"
VENDOR_HOLD = "hold:8"  # the vendor answers after 8 s unless released sooner


# Each vendor: (emulator, receiver, a function that sends one signed delivery to a URL).
Door = tuple[EmulatorServer, WebhookReceiver, Callable[[str], Any]]


def hubspot_door(stack: ExitStack, _tmp: Path) -> Door:
    crm = stack.enter_context(HubSpotEmulator(token="hs-token"))
    crm.seed(deals=[{"id": "1", "properties": {"dealname": "Deal 1", "dealstage": "closedwon"}}])
    client = HubSpotClient(crm.url, access_token="hs-token", rate_limit=FAST,
                           search_rate_limit=FAST)
    return crm, HubSpotWebhooks(SECRET, client), lambda url: crm.send_webhooks(
        url, [{"subscriptionType": "deal.creation", "objectId": 1}], client_secret=SECRET)


def salesforce_door(stack: ExitStack, tmp: Path) -> Door:
    cert = self_signed(tmp)
    org = stack.enter_context(SalesforceEmulator(tls=cert))
    account = org.seed({"Account": [{"Name": "Globex", "CurrencyIsoCode": "USD"}]})["Account"][0]
    deal = org.upsert_record("Opportunity", {"Name": "Deal 1", "AccountId": account,
                                             "StageName": "Closed Won", "IsWon": True,
                                             "CloseDate": "2026-03-01"})
    client = SalesforceClient(org.url, client_id="billbridge", client_secret="s3cret",
                              refresh_token="refresh-token", verify=cert[0], rate_limit=FAST)
    client.query_all("SELECT Id FROM Account")  # log in now: the held call is the record read
    receiver = SalesforceOutboundMessages(org.org_id, client=client, secret=SECRET)
    return org, receiver, lambda url: org.send_outbound_message(
        f"{url}?token={SECRET}", "Opportunity", [deal["Id"]])


def kantata_door(stack: ExitStack, _tmp: Path) -> Door:
    psa = stack.enter_context(KantataEmulator(token="kt-token", rate_limit=100_000,
                                              limited_rate_limit=100_000))
    mark = psa.event_count
    psa.add("time_entries", {"id": "1", "workspace_id": "77", "user_id": "7",
                             "story_id": "900", "date_performed": "2026-03-02",
                             "time_in_minutes": 480})
    client = KantataClient(f"{psa.url}/api/v1", access_token="kt-token", rate_limit=FAST,
                           limited_rate_limit=FAST)
    return psa, KantataWebhooks(SECRET, client), lambda url: psa.send_events(
        url, psa.subscribed_events(mark), secret=SECRET)


def tempo_door(stack: ExitStack, _tmp: Path) -> Door:
    tempo = stack.enter_context(TempoEmulator(token="tempo-token", rate_limit=100_000))
    worklog = tempo.log(author="70121:alice", issue=10001, account="GLX-001",
                        day="2026-03-02", seconds=3600)["tempoWorklogId"]
    client = TempoClient(f"{tempo.url}/4", token="tempo-token", rate_limit=FAST)
    return tempo, TempoWebhooks(SECRET, client), lambda url: tempo.send_webhook(
        url, "created", worklog, secret=SECRET)


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as resources:
        yield resources


@pytest.mark.parametrize("make_door", [hubspot_door, salesforce_door, kantata_door,
                                       tempo_door],
                         ids=["hubspot", "salesforce", "kantata", "tempo"])
def test_a_vendor_held_for_8_s_does_not_delay_healthz(
        engine: Engine, tmp_path: Path, stack: ExitStack,
        make_door: Callable[[ExitStack, Path], Door]) -> None:
    vendor, receiver, deliver = make_door(stack, tmp_path)
    server = HubServer(Hub(engine, {"ledger": FakeTarget()}), port=0, engine=False,
                       webhooks={"vendor": receiver})
    server.start()
    stack.callback(server.stop)
    health = stack.enter_context(httpx.Client(base_url=server.url, timeout=30))
    assert health.get("/healthz").status_code == 200  # the connection is open and warm

    vendor.faults.script([VENDOR_HOLD])
    stack.callback(vendor.faults.release)  # a failing assertion must not leave it held
    answers: list[Any] = []
    delivery = threading.Thread(target=lambda: answers.append(
        deliver(f"{server.url}/v1/webhooks/vendor")))
    delivery.start()
    held = vendor.faults.wait_held(timeout=20)
    assert held is not None, "the delivery never reached the vendor"

    # Best of three: a busy machine may stall one probe, a blocked loop stalls all three
    # (each gives up after 2 s, so all three end while the vendor is still held).
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        try:
            answered = health.get("/healthz", timeout=2.0).status_code == 200
        except httpx.TimeoutException:
            answered = False
        timings.append(time.perf_counter() - started if answered else float("inf"))
    assert delivery.is_alive() and not answers, "the vendor let go before the probes ended"
    assert min(timings) < 0.1, f"/healthz took {timings} s while a vendor was held"

    vendor.faults.release()
    delivery.join(timeout=20)
    assert answers, "the held delivery never got its answer"
