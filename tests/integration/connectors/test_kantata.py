"""The Kantata connector against its emulator over real HTTP: polling a seeded
account into the inbox at its boundaries, deletions and un-approvals, relayed
Subscribed Events with good, forged and stale signatures, 429s and the rate,
and the write-back to project custom fields."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
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
from billbridge.connectors.kantata import CONNECTOR
from billbridge.connectors.kantata.client import KantataClient
from billbridge.connectors.kantata.emulator import KantataEmulator
from billbridge.connectors.kantata.mapping import MappingConfig, stamp_seconds
from billbridge.connectors.kantata.source import KantataSource
from billbridge.connectors.kantata.target import KantataTarget
from billbridge.connectors.kantata.webhooks import KantataWebhooks
from billbridge.emulation.faults import Fault, FaultRule
from billbridge.engine.clock import SystemClock
from billbridge.engine.hub import Hub, HubSettings
from billbridge.engine.reconcile import unmapped
from billbridge.engine.sync import load_cursor, sync
from billbridge.store.tables import exceptions, inbox
from billbridge.web import HubServer
from conftest import CONFIG as BASE_CONFIG
from fakes import FakeTarget

TOKEN, SECRET = "kantata-token", "relay-secret"
FAST = RateLimit(10_000, 1, burst=10_000)
CODE, ERP_PROJECT, ERP_CUSTOMER, INVOICE_STATUS, ACCEPTED = "501", "502", "503", "504", "601"
TODAY = datetime(2026, 3, 20, 12, tzinfo=UTC)
CONFIG = MappingConfig(workers={"7": "w-alice", "8": "w-bob"}, custom_fields={
    "project_code": CODE, "erp_project_id": ERP_PROJECT, "erp_customer_id": ERP_CUSTOMER,
    "invoice_status": INVOICE_STATUS, "milestone_accepted": ACCEPTED})
SAME_SECOND = "2026-03-05T10:00:00Z"
TIME = "/api/v1/time_entries"


@pytest.fixture
def kantata() -> Iterator[KantataEmulator]:
    with KantataEmulator(token=TOKEN, rate_limit=100_000, limited_rate_limit=100_000) as em:
        em.seed(custom_fields=[
            {"id": CODE, "name": "Project Code"}, {"id": ERP_PROJECT, "name": "ERP Project"},
            {"id": ERP_CUSTOMER, "name": "ERP Customer"},
            {"id": INVOICE_STATUS, "name": "Invoice Status"},
            {"id": ACCEPTED, "name": "Client Accepted", "subject_type": "Story"}],
            users=[{"id": "7", "full_name": "Alice Ng"}, {"id": "8", "full_name": "Bob Ruiz"}],
            workspaces=[{"id": "77", "title": "Globex ERP rollout"},
                        {"id": "78", "title": "Internal tooling"}])
        em.set_custom_value("Workspace", 77, CODE, "GLX-001")
        em.seed(stories=[{"id": "900", "workspace_id": "77", "title": "Development"}])
        yield em  # type: ignore[misc]


def client(em: KantataEmulator, **kwargs: Any) -> KantataClient:
    kwargs.setdefault("rate_limit", FAST)
    kwargs.setdefault("limited_rate_limit", FAST)
    return KantataClient(f"{em.url}/api/v1", access_token=TOKEN, **kwargs)


def source(em: KantataEmulator, page_size: int = 3, window: int = 31,
           **kwargs: Any) -> KantataSource:
    """A poller on the emulator that compares id sets on every poll."""
    return KantataSource(client(em, **kwargs), config=CONFIG, page_size=page_size,
                         now=lambda: TODAY, deletion_window_days=window, reconcile_every=0)


def entry(i: int, **fields: Any) -> dict[str, Any]:
    return {"id": str(i), "workspace_id": "77", "user_id": "7", "story_id": "900",
            "date_performed": "2026-03-02", "time_in_minutes": 480, **fields}


def stored(engine: Engine, prefix: str = "time_entry:") -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.execute(select(inbox.c.event_id).where(
            inbox.c.source == "kantata", inbox.c.event_id.startswith(prefix))).scalars())


def payloads(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(inbox.c.event_id, inbox.c.payload)
                            .where(inbox.c.status != "failed")).all()
    return {r.event_id: json.loads(r.payload) for r in rows}


def entry_ids(em: KantataEmulator, *ids: int) -> list[str]:
    """The event ids of entries as the emulator holds them now."""
    found = []
    for i in ids:
        record = em.get("time_entries", i)
        stamps = [stamp_seconds(record["updated_at"])]
        if record.get("active_submission_id"):
            stamps.append(stamp_seconds(em.get("timesheet_submissions",
                                               record["active_submission_id"])["updated_at"]))
        found.append(f"time_entry:{i}:{max(s for s in stamps if s)}")
    return sorted(found)


# -- polling ----------------------------------------------------------------------------
def test_a_seeded_account_of_several_pages_syncs_once_and_a_repoll_adds_nothing(
        engine: Engine, kantata: KantataEmulator) -> None:
    kantata.seed(time_entries=[entry(i, time_in_minutes=95) for i in range(1, 8)],
                 expenses=[{"id": "51", "workspace_id": "77", "user_id": "8",
                            "date": "2026-03-03", "amount_in_cents": 23450,
                            "category": "Travel"}],
                 stories=[{"id": "901", "workspace_id": "77", "title": "Go-live",
                           "story_type": "milestone", "budget_estimate_in_cents": 1250000}])
    kantata.resolve("time_entries", kantata.submit("time_entries", ["1", "2", "3"]), "approved")
    kantata.resolve("expenses", kantata.submit("expenses", ["51"]), "approved")
    result = sync(engine, source(kantata, page_size=3), SystemClock())
    assert stored(engine) == entry_ids(kantata, *range(1, 8))
    assert result.malformed == 0 and result.pages >= 5
    events = payloads(engine)
    approved = events[entry_ids(kantata, 1)[0]]["data"]
    assert approved == {"id": "kt-te-1", "worker": "w-alice", "project": "GLX-001",
                        "task": "900", "work_date": "2026-03-02", "hours": "1.58",
                        "billable": True, "notes": "", "status": "approved",
                        "source_version": approved["source_version"]}
    assert events[entry_ids(kantata, 7)[0]]["data"]["status"] == "submitted"
    expense = next(e for i, e in events.items() if i.startswith("expense:51:"))
    assert (expense["data"]["amount"], expense["data"]["status"]) == ("234.50", "approved")
    milestone = next(e for i, e in events.items() if i.startswith("milestone:901:"))
    assert milestone["data"]["milestone"]["amount"] == "12500.00"
    project = next(e for i, e in events.items() if i.startswith("workspace:77:"))
    assert project["data"]["status"] == "active"
    assert [t["id"] for t in project["data"]["tasks"]] == ["900", "901"]
    assert not stored(engine, "workspace:78:")  # no project code: not linked to billing
    again = sync(engine, source(kantata, page_size=3), SystemClock())
    assert again.accepted == 0


def test_entries_sharing_the_cursor_second_across_pages_and_polls_are_neither_skipped_nor_doubled(
        engine: Engine, kantata: KantataEmulator) -> None:
    kantata.seed(time_entries=[entry(i, updated_at=SAME_SECOND) for i in range(1, 9)])
    first = sync(engine, source(kantata, page_size=3), SystemClock())
    assert stored(engine) == entry_ids(kantata, *range(1, 9)) and first.accepted == 8 + 2
    # Another entry committed later with a stamp in the same second as the cursor.
    kantata.add("time_entries", entry(9, updated_at=SAME_SECOND))
    second = sync(engine, source(kantata, page_size=3), SystemClock())
    assert second.accepted == 1
    assert stored(engine) == entry_ids(kantata, *range(1, 10))
    assert sync(engine, source(kantata, page_size=3), SystemClock()).accepted == 0


def test_an_edit_during_the_poll_cannot_hide_another_entry(kantata: KantataEmulator) -> None:
    kantata.seed(time_entries=[entry(i) for i in range(1, 8)])
    pages = source(kantata, page_size=2).poll(None)
    seen = [e["id"] for p in [next(pages), next(pages)] for e in p.events]  # project, 1-2
    kantata.update("time_entries", 1, notes="edited")  # entry 1 moves to the end
    seen += [e["id"] for p in pages for e in p.events if isinstance(e, dict)]
    assert set(entry_ids(kantata, *range(1, 8))) <= set(seen)


def test_an_interrupted_poll_resumes_from_its_last_committed_page(
        engine: Engine, kantata: KantataEmulator) -> None:
    kantata.seed(time_entries=[entry(i, updated_at=f"2026-03-05T10:00:0{i}Z")
                               for i in range(1, 10)])
    kantata.faults.script([FaultRule(Fault.OK, path_prefix=TIME),
                           FaultRule(Fault.OK, path_prefix=TIME),
                           FaultRule(Fault.SERVER_ERROR, path_prefix=TIME)])
    with pytest.raises(TransientError):
        sync(engine, source(kantata, page_size=3, window=0), SystemClock())
    with engine.connect() as conn:
        cursor = json.loads(load_cursor(conn, "kantata", "default") or "{}")
    # Two pages committed with their cursor: 1-3, then 3-5 asked again from 3's second.
    assert len(stored(engine)) == 5
    assert cursor["since"]["time_entries"] == kantata.get("time_entries", 5)["updated_at"]
    asked = sum(1 for r in kantata.requests if r[2].startswith(TIME))
    sync(engine, source(kantata, page_size=3, window=0), SystemClock())
    assert stored(engine) == entry_ids(kantata, *range(1, 10))
    # Resumed at entry 5's second (5-7, then 7-9), not at the beginning.
    assert sum(1 for r in kantata.requests if r[2].startswith(TIME)) - asked == 2


def test_pagination_that_repeats_itself_stops_with_an_error(kantata: KantataEmulator) -> None:
    kantata.seed(time_entries=[entry(i, updated_at=SAME_SECOND) for i in range(1, 8)])
    kantata.ignore_page = True  # every page number answers the first page
    with pytest.raises(PermanentError, match="stopping instead of looping") as raised:
        list(source(kantata, page_size=2).poll(None))
    assert raised.value.code == "PAGINATION_LOOP"


def test_unmappable_records_open_exceptions_with_reason_and_raw_and_the_rest_flow(
        engine: Engine, kantata: KantataEmulator) -> None:
    kantata.seed(time_entries=[entry(1), entry(2, user_id="99", approved=True),
                               entry(3, workspace_id="78"), entry(4)])
    result = sync(engine, source(kantata), SystemClock())
    assert result.malformed == 2 and stored(engine) == sorted(entry_ids(kantata, 1, 2, 3, 4))
    with engine.connect() as conn:
        found = conn.execute(select(exceptions.c.message, exceptions.c.raw)).all()
    messages = " | ".join(m for m, _raw in found)
    assert 'user 99 is not mapped to a worker; add "99": "<worker id>"' in messages
    assert "project (workspace) 78 'Internal tooling' has no project code" in messages
    assert any('"user_id": "99"' in raw for _m, raw in found)
    with engine.connect() as conn:  # user 99's approved hours are leakage, with the fix
        [leak] = unmapped(conn)
    assert (leak.record, leak.hours) == ("kt-te-2", Decimal("8.00"))
    assert "map user 99 to a worker under workers in the kantata connection" in leak.fix


# -- deletions and un-approvals -----------------------------------------------------------
def test_deleted_entries_and_expenses_become_deletion_events_by_id_sets(
        engine: Engine, kantata: KantataEmulator) -> None:
    kantata.seed(time_entries=[entry(i) for i in range(1, 5)],
                 expenses=[{"id": "51", "workspace_id": "77", "user_id": "7",
                            "date": "2026-03-03", "amount_in_cents": 1000}])
    sync(engine, source(kantata), SystemClock())
    kantata.delete("time_entries", 2)
    kantata.delete("expenses", 51)
    kantata.update("time_entries", 3, date_performed="2025-01-02")  # out of the window
    kantata.update("workspaces", 77, archived=True)  # its records still exist
    sync(engine, source(kantata), SystemClock())
    events = payloads(engine)
    assert events["time_entry:2:deleted"]["data"] == {"id": "kt-te-2", "project": "GLX-001",
                                                      "source_version": None}
    assert events["expense:51:deleted"]["type"] == "expense.deleted"
    assert "time_entry:3:deleted" not in events
    assert sync(engine, source(kantata), SystemClock()).accepted == 0


def test_an_approval_taken_back_becomes_a_newer_submitted_version(
        engine: Engine, kantata: KantataEmulator) -> None:
    kantata.seed(time_entries=[entry(1), entry(2)])
    sheet = kantata.submit("time_entries", ["1", "2"])
    kantata.resolve("time_entries", sheet, "approved")
    sync(engine, source(kantata), SystemClock())
    approved = entry_ids(kantata, 1)[0]
    entry_stamp = kantata.get("time_entries", 1)["updated_at"]
    kantata.resolve("time_entries", sheet, "canceled")
    assert kantata.get("time_entries", 1)["updated_at"] == entry_stamp  # the entry never moved
    sync(engine, source(kantata), SystemClock())
    events = payloads(engine)
    undone = [e for i, e in events.items() if i.startswith("time_entry:1:") and i != approved]
    assert len(undone) == 1 and undone[0]["data"]["status"] == "submitted"
    assert undone[0]["data"]["source_version"] > events[approved]["data"]["source_version"]
    rejected = kantata.submit("time_entries", ["2"])
    kantata.resolve("time_entries", rejected, "rejected")
    sync(engine, source(kantata), SystemClock())
    assert payloads(engine)[entry_ids(kantata, 2)[0]]["data"]["status"] == "rejected"


# -- the relay door ---------------------------------------------------------------------------
@pytest.fixture
def hub_server(engine: Engine, kantata: KantataEmulator) -> Iterator[HubServer]:
    receiver = KantataWebhooks(SECRET, client(kantata), config=CONFIG)
    server = HubServer(Hub(engine, {"ledger": FakeTarget()}), port=0,
                       webhooks={"kantata": receiver})
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_relayed_events_with_good_forged_and_stale_signatures(
        engine: Engine, kantata: KantataEmulator, hub_server: HubServer) -> None:
    mark = kantata.event_count
    kantata.add("time_entries", entry(1))
    url = f"{hub_server.url}/v1/webhooks/kantata"
    events = kantata.subscribed_events(mark)
    good = kantata.send_events(url, events, secret=SECRET)
    forged = kantata.send_events(url, events, secret="wrong")
    stale = kantata.send_events(url, events, secret=SECRET, timestamp=int(time.time()) - 301)
    unsigned = kantata.send_events(url, events, secret=SECRET, signature="")
    assert [r.status_code for r in (good, forged, stale, unsigned)] == [202, 401, 401, 401]
    assert "does not match" in forged.json()["message"]
    assert "stale" in stale.json()["message"] and "not signed" in unsigned.json()["message"]
    assert stored(engine) == entry_ids(kantata, 1)


def test_replayed_deliveries_and_an_overlapping_poll_store_each_change_once(
        engine: Engine, kantata: KantataEmulator, hub_server: HubServer) -> None:
    mark = kantata.event_count
    kantata.seed(time_entries=[entry(1), entry(2)])
    kantata.resolve("time_entries", kantata.submit("time_entries", ["1"]), "approved")
    kantata.delete("time_entries", 2)
    url = f"{hub_server.url}/v1/webhooks/kantata"
    events = kantata.subscribed_events(mark)
    first = kantata.send_events(url, events, secret=SECRET)
    assert first.status_code == 202, first.text
    assert kantata.send_events(url, events, secret=SECRET).status_code == 202  # a replay
    assert stored(engine) == sorted([*entry_ids(kantata, 1), "time_entry:2:deleted"])
    result = sync(engine, source(kantata), SystemClock())
    assert result.duplicates >= 1  # the poll read entry 1's approval again: the same event
    assert stored(engine) == sorted([*entry_ids(kantata, 1), "time_entry:2:deleted"])
    with engine.connect() as conn:
        repeats = conn.execute(select(inbox.c.duplicates).where(
            inbox.c.event_id == entry_ids(kantata, 1)[0])).scalar_one()
    assert repeats >= 2


def test_a_claimed_deletion_of_a_record_kantata_still_has_is_ignored(
        engine: Engine, kantata: KantataEmulator, hub_server: HubServer) -> None:
    kantata.add("time_entries", entry(1))
    forged_claim = {**kantata.subscribed_events()[-1], "id": "999",
                    "event_type": "time_entry:deleted", "current_payload": None}
    answer = kantata.send_events(f"{hub_server.url}/v1/webhooks/kantata", [forged_claim],
                                 secret=SECRET)
    assert answer.status_code == 202 and stored(engine) == []


def test_a_delivery_answers_503_when_kantata_cannot_be_reached(
        engine: Engine, kantata: KantataEmulator, hub_server: HubServer) -> None:
    mark = kantata.event_count
    kantata.add("time_entries", entry(1))
    kantata.faults.script(["503"])
    answer = kantata.send_events(f"{hub_server.url}/v1/webhooks/kantata",
                                 kantata.subscribed_events(mark), secret=SECRET)
    assert answer.status_code == 503 and stored(engine) == []


# -- limits -------------------------------------------------------------------------------------
def test_a_429_storm_is_ridden_out_without_loss(engine: Engine,
                                                kantata: KantataEmulator) -> None:
    kantata.seed(time_entries=[entry(i) for i in range(1, 7)])
    kantata.faults.script(["429:0"] * 12)
    result = sync(engine, source(kantata, page_size=2, max_429_retries=20, max_retry_wait=0.01),
                  SystemClock())
    assert stored(engine) == entry_ids(kantata, *range(1, 7)) and result.malformed == 0
    assert sum(1 for r in kantata.requests if r[3] == 429) == 12


def test_the_client_keeps_within_the_rate_and_an_over_eager_one_is_slowed_losing_nothing(
        engine: Engine, kantata: KantataEmulator) -> None:
    kantata.rate_limit, kantata.window_seconds = 8, 0.5  # stands for Kantata's limit
    kantata.seed(time_entries=[entry(i) for i in range(1, 9)])
    paced = RateLimit(6, 0.5, burst=1)  # at most 7 in any 0.5 s: a margin for jitter
    result = sync(engine, source(kantata, page_size=2, rate_limit=paced), SystemClock())
    assert result.malformed == 0 and stored(engine) == entry_ids(kantata, *range(1, 9))
    assert len(kantata.requests) > 10 and all(r[3] == 200 for r in kantata.requests)
    assert kantata.max_in_window(0.5) <= 8
    kantata.requests.clear()
    eager = source(kantata, page_size=2, max_429_retries=30, max_retry_wait=0.1)
    assert sync(engine, eager, SystemClock()).accepted == 0
    answered = [r for r in kantata.requests if r[3] == 200]
    assert len(answered) > 10 and any(r[3] == 429 for r in kantata.requests)


# -- write-back ----------------------------------------------------------------------------------
def writeback(i: int, code: str, fields: dict[str, Any], **refs: str) -> OutboundCommand:
    return OutboundCommand(i, "psa", "psa.writeback", f"key-{i}", f"project:{code}",
                           {"system": "kantata", "record": code, "fields": fields}, refs=refs)


def test_write_back_sets_project_custom_fields_found_by_code_and_a_replay_changes_nothing(
        kantata: KantataEmulator) -> None:
    target = KantataTarget(client(kantata), name="kantata", config=CONFIG)
    fields = {"erp_project_id": "P-1042", "erp_customer_id": "C-7", "project_code": "GLX-001"}
    results = target.send([writeback(1, "GLX-001", fields),
                           writeback(2, "NOPE-1", fields),
                           writeback(3, "GLX-001", {"unmapped": "x"})])
    by_key = {r.idempotency_key: r for r in results}
    assert by_key["key-1"].status is ResultStatus.APPLIED and by_key["key-1"].external_id == "77"
    assert by_key["key-2"].status is ResultStatus.REJECTED and by_key["key-2"].code == "NOT_FOUND"
    assert "0 Kantata projects carry project code 'NOPE-1'" in (by_key["key-2"].message or "")
    assert by_key["key-3"].status is ResultStatus.REJECTED
    assert "`custom_fields` option" in (by_key["key-3"].message or "")
    assert kantata.custom_value("Workspace", 77, ERP_PROJECT) == "P-1042"
    assert kantata.custom_value("Workspace", 77, ERP_CUSTOMER) == "C-7"
    before = kantata.get("workspaces", 77)["updated_at"]
    target.send([writeback(1, "GLX-001", fields)])  # a resend after a lost acknowledgement
    assert kantata.get("workspaces", 77)["updated_at"] == before


def test_write_back_uses_the_known_workspace_and_batches_a_hundred_values_a_call(
        kantata: KantataEmulator) -> None:
    target = KantataTarget(client(kantata), config=CONFIG)
    commands = [writeback(i, "GLX-001", {"invoice_status": f"issued-{i}",
                                         "erp_project_id": "P-1", "erp_customer_id": "C-1"},
                          **{"activation:GLX-001": "77"}) for i in range(40)]
    results = target.send(commands)
    assert {r.status for r in results} == {ResultStatus.APPLIED}
    posts = [r for r in kantata.requests if r[1] == "POST"]
    assert len(posts) == 2  # 120 values: 99 in one call, 21 in the next
    assert not [r for r in kantata.requests if r[1] == "GET"]  # no search: the hub knew it
    assert kantata.custom_value("Workspace", 77, INVOICE_STATUS) == "issued-39"


def test_a_refused_value_rejects_only_its_command(kantata: KantataEmulator) -> None:
    kantata.set_custom_value("Workspace", 78, CODE, "INT-1")
    kantata.delete("workspaces", 78)  # the project is gone: its values are refused
    target = KantataTarget(client(kantata), config=CONFIG)
    good = writeback(1, "GLX-001", {"erp_project_id": "P-1"})
    bad = writeback(2, "INT-1", {"erp_project_id": "P-2"}, **{"activation:INT-1": "78"})
    with pytest.raises(PermanentError):
        target.send([good, bad])  # the dispatcher splits such a batch in halves
    [alone] = target.send([bad])
    assert alone.status is ResultStatus.REJECTED and "Workspace 78 does not exist" in (
        alone.message or "")
    assert target.send([good])[0].status is ResultStatus.APPLIED


# -- the whole loop -----------------------------------------------------------------------------
def test_the_connector_spec_builds_from_environment_strings(kantata: KantataEmulator) -> None:
    kantata.add("time_entries", entry(1))
    connection = Connection("kantata", "kantata", f"{kantata.url}/api/v1", credentials={
        "access_token": TOKEN, "webhook_secret": SECRET}, options={
        "workers": '{"7": "w-alice"}', "custom_fields": json.dumps({"project_code": CODE}),
        "page_size": "50", "requests_per_minute": "6000",
        "limited_requests_per_minute": "6000"})
    assert CONNECTOR.source and CONNECTOR.target and CONNECTOR.webhooks
    events = [e for p in CONNECTOR.source(connection).poll(None) for e in p.events]
    assert any(isinstance(e, dict) and e["id"] == entry_ids(kantata, 1)[0] for e in events)
    target = CONNECTOR.target(connection)
    assert target.max_batch == 100
    assert target.rate_limit.requests + target.rate_limit.burst == 6000  # in any minute
    assert isinstance(CONNECTOR.webhooks(connection), KantataWebhooks)


def test_a_won_deal_writes_its_erp_ids_to_kantata_and_approved_time_comes_back_priced(
        engine: Engine, kantata: KantataEmulator) -> None:
    ledger, crm = FakeTarget("ledger"), FakeTarget("crm")
    psa = KantataTarget(client(kantata), name="kantata", config=CONFIG)
    hub = Hub(engine, {"ledger": ledger, "crm": crm, "kantata": psa}, settings=HubSettings(
        routes={"erp": "ledger", "crm": "crm", "psa": "kantata"}))
    hub.activate_config({**BASE_CONFIG, "psa_system": "kantata"})
    hub.ingest([{"type": "opportunity.closed_won", "id": "deal:1:1", "at": "2026-03-01T09:00:00Z",
                 "data": {"opportunity": {"id": "1", "name": "Globex ERP rollout",
                                          "amount": "50000.00", "currency": "USD",
                                          "close_date": "2026-03-01"},
                          "customer": {"id": "501", "name": "Globex LLC", "currency": "USD",
                                       "billing_country": "US"},
                          "contract": {"id": "ct-1", "billing_model": "time_and_materials",
                                       "currency": "USD", "legal_entity": "US01",
                                       "start": "2026-03-01", "rate_card": "rc-standard"},
                          "project": {"code": "GLX-001", "name": "Globex ERP rollout"}}}],
               source="hubspot")
    hub.run_until_idle()
    erp_project = ledger.applied[next(c.idempotency_key for c in ledger.effects
                                      if c.kind == "project.upsert")]
    assert kantata.custom_value("Workspace", 77, ERP_PROJECT) == erp_project
    assert kantata.custom_value("Workspace", 77, CODE) == "GLX-001"
    kantata.seed(time_entries=[entry(1, time_in_minutes=450), entry(2, user_id="8")])
    kantata.resolve("time_entries", kantata.submit("time_entries", ["1", "2"]), "approved")
    sync(engine, source(kantata), SystemClock())
    hub.run_until_idle()
    charges = {p["time_entry"]: (p["hours"], p["rate"], p["amount"])
               for p in ledger.payloads("time_charge.post")}
    assert charges == {"kt-te-1": ("7.50", "175.00", "1312.50"),
                       "kt-te-2": ("8.00", "150.00", "1200.00")}


def test_the_emulator_runs_from_the_cli_by_its_vendor_name() -> None:
    process = subprocess.Popen([sys.executable, "-m", "billbridge", "emulator", "run",
                                "kantata"], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split("listening on ")[1].strip()
        answer = httpx.get(f"{url}/api/v1/workspaces.json",
                           headers={"Authorization": "Bearer kantata-token"})
        assert answer.status_code == 200 and answer.json()["count"] == 0
    finally:
        process.terminate()
        process.wait(timeout=10)
