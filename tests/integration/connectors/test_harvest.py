"""The Harvest connector against its emulator over real HTTP: polling time
entries and expenses into the inbox (boundaries, resumption, termination,
deletions, un-approvals, mapping faults), rate limits, and the project
write-back. Harvest has no webhooks, so every change arrives by polling."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
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
from billbridge.connectors.harvest import CONNECTOR
from billbridge.connectors.harvest.client import HarvestClient, Page, harvest_rate_limit
from billbridge.connectors.harvest.emulator import HarvestEmulator
from billbridge.connectors.harvest.mapping import MappingConfig
from billbridge.connectors.harvest.source import HarvestSource
from billbridge.connectors.harvest.target import MARKER, HarvestTarget
from billbridge.engine.clock import ManualClock, SystemClock
from billbridge.engine.hub import Hub, HubSettings
from billbridge.engine.policy import RetryPolicy
from billbridge.engine.reconcile import unmapped
from billbridge.engine.sync import load_cursor, sync
from billbridge.store.db import make_engine, migrate
from billbridge.store.tables import exceptions, inbox
from conftest import CONFIG, project_event
from fakes import FakeTarget

TOKEN, ACCOUNT = "harvest-token", "123456"
FAST = RateLimit(1000, 1, burst=1000)
KIM, BOB, CAROL = 1782959, 1795925, 1782884
PROJECT, TASK = 14307913, 8083366
WORKERS = {str(KIM): "w-alice", str(BOB): "w-bob"}


@pytest.fixture
def harvest() -> Iterator[HarvestEmulator]:
    with HarvestEmulator(token=TOKEN, account_id=ACCOUNT) as emulator:
        emulator.seed(users=[{"id": KIM, "name": "Kim Allen"}, {"id": BOB, "name": "Bob Ruiz"},
                             {"id": CAROL, "name": "Carol Diaz"}],
                      clients=[{"id": 5735774, "name": "Globex LLC"}],
                      projects=[{"id": PROJECT, "name": "Globex rollout", "code": "GLX-001",
                                 "client_id": 5735774}],
                      tasks=[{"id": TASK, "name": "Programming"}])
        yield emulator  # type: ignore[misc]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Engine]:
    """SQLite only: for tests of HTTP behaviour, where the store is incidental
    (polling through the store runs on both databases)."""
    eng = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    migrate(eng)
    yield eng
    eng.dispose()


def client(emulator: HarvestEmulator, **kwargs: Any) -> HarvestClient:
    kwargs.setdefault("rate_limit", FAST)
    return HarvestClient(f"{emulator.url}/v2", token=TOKEN, account_id=ACCOUNT, **kwargs)


def source(emulator: HarvestEmulator, per_page: int = 3, *, workers: dict[str, str] = WORKERS,
           harvest_client: HarvestClient | None = None, **kwargs: Any) -> HarvestSource:
    return HarvestSource(harvest_client or client(emulator), per_page=per_page,
                         config=MappingConfig(workers=workers, tasks={str(TASK): "dev"}),
                         **kwargs)


def day(back: int) -> str:
    """A date ``back`` days before today (the deletion window counts from today)."""
    return (datetime.now(UTC).date() - timedelta(days=back)).isoformat()


def log(emulator: HarvestEmulator, back: int, *, user: int = KIM, hours: float = 1.5,
        approved: bool = True, **kwargs: Any) -> dict[str, Any]:
    return emulator.log_time(user=user, project=PROJECT, task=TASK, spent_date=day(back),
                             hours=hours, approved=approved, **kwargs)


def eid(record: dict[str, Any], kind: str = "time_entry") -> str:
    return f"{kind}:{record['id']}:{record['updated_at']}"


def stored(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.execute(select(inbox.c.event_id)
                                   .where(inbox.c.source == "harvest")).scalars())


def payload(engine: Engine, event_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        return dict(json.loads(conn.execute(select(inbox.c.payload).where(
            inbox.c.event_id == event_id)).scalar_one()))


def cursor(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return dict(json.loads(load_cursor(conn, "harvest", "default") or "{}"))


# -- a seeded account, more than one page ----------------------------------------------
def test_a_seeded_account_syncs_entries_and_expenses_across_many_pages(
        engine: Engine, harvest: HarvestEmulator) -> None:
    entries = [log(harvest, back, user=KIM if back % 2 else BOB, hours=2.11)
               for back in range(8) for _ in range(2)]
    meals = harvest.log_expense(user=KIM, project=PROJECT, spent_date=day(1), total_cost=33.35,
                                approved=True)
    result = sync(engine, source(harvest, per_page=3), SystemClock())
    assert result.accepted == 17 and result.malformed == 0 and result.pages > 6
    assert stored(engine) == sorted([eid(e) for e in entries] + [eid(meals, "expense")])
    data = payload(engine, eid(entries[0]))["data"]
    assert data == {"id": f"te_harvest_{entries[0]['id']}", "worker": "w-bob",
                    "project": "GLX-001", "task": "dev", "work_date": day(0),
                    "hours": "2.11", "billable": True, "notes": "", "status": "approved",
                    "source_version": data["source_version"]}
    expense = payload(engine, eid(meals, "expense"))["data"]
    assert (expense["amount"], expense["currency"], expense["status"]) == (
        "33.35", "USD", "approved")
    state = cursor(engine)["time_entries"]
    assert state["phase"] is None and state["since"] is not None
    assert sum(len(ids) for projects in state["known"].values()
               for ids in projects.values()) == 16


def test_hours_and_costs_with_more_digits_than_a_float_holds_reach_the_events_exactly(
        engine: Engine, harvest: HarvestEmulator) -> None:
    """Harvest's numbers are JSON numbers the client reads as Decimal: a cost a
    float rounds (to 922337203685477.6) and hours a float rounds to the half
    (2.004999999999999999 is 2.005 as a float, billed as 2.01) arrive as sent."""
    entry = log(harvest, 0, hours=Decimal("2.004999999999999999"))
    cost = harvest.log_expense(user=KIM, project=PROJECT, spent_date=day(0),
                               total_cost=Decimal("922337203685477.5807"), approved=True)
    result = sync(engine, source(harvest), SystemClock())
    assert result.accepted == 2 and result.malformed == 0
    assert payload(engine, eid(entry))["data"]["hours"] == "2.00"
    assert payload(engine, eid(cost, "expense"))["data"]["amount"] == "922337203685477.5807"


def test_re_polling_overlapping_windows_stores_no_second_event(
        engine: Engine, harvest: HarvestEmulator) -> None:
    entries = [log(harvest, back) for back in range(5)]
    assert sync(engine, source(harvest), SystemClock()).accepted == 5
    again = sync(engine, source(harvest), SystemClock())
    # The next window starts a minute before the last read began: it reads the
    # same entries again, and the inbox keeps one event each.
    assert again.accepted == 0 and again.duplicates >= 5
    newer = log(harvest, 0, hours=3.0)
    third = sync(engine, source(harvest), SystemClock())
    assert third.accepted == 1
    assert stored(engine) == sorted(eid(e) for e in [*entries, newer])


@pytest.mark.parametrize("one_date", [True, False], ids=["one date", "several dates"])
def test_entries_sharing_the_cursor_stamp_across_page_and_poll_boundaries_are_each_kept_once(
        engine: Engine, harvest: HarvestEmulator, one_date: bool) -> None:
    # A timesheet approval stamps every entry it approves with one updated_at.
    stamp = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    entries = [log(harvest, 0 if one_date else i // 2, updated_at=stamp) for i in range(7)]
    # The changes read alone: no snapshot heals a miss here.
    first = sync(engine, source(harvest, per_page=2, deletion_window_days=0), SystemClock())
    assert first.accepted == 7 and first.malformed == 0
    assert stored(engine) == sorted(eid(e) for e in entries)
    since = cursor(engine)["time_entries"]["since"]
    later = [log(harvest, 1, updated_at=since) for _ in range(3)]  # at the cursor's instant
    second = sync(engine, source(harvest, per_page=2, deletion_window_days=0), SystemClock())
    assert second.accepted == 3
    assert stored(engine) == sorted(eid(e) for e in [*entries, *later])


def test_a_deletion_during_the_poll_cannot_hide_another_entry(
        harvest: HarvestEmulator) -> None:
    entries = [log(harvest, back) for back in range(9)]
    # The changes read alone (no snapshot to heal a miss afterwards).
    pages = source(harvest, per_page=3, deletion_window_days=0).poll(None)
    first = next(pages)
    # Harvest numbers its pages: deleting an entry read on page 1 shifts an
    # unread entry onto page 1. The keyset on spent_date does not care.
    harvest.delete("time_entries", entries[0]["id"])
    seen = {e["id"] for page in [first, *pages] for e in page.events}
    assert {eid(e) for e in entries} <= seen


def test_the_snapshot_emits_what_a_read_missed(store: Engine,
                                               harvest: HarvestEmulator) -> None:
    entries = [log(harvest, back) for back in range(4)]
    missed = entries[2]["id"]

    class LosesOne(HarvestClient):
        def page(self, resource: str, params: Any) -> Page:
            page = super().page(resource, params)
            if "updated_since" in params or "from" not in params:  # the changes read
                return Page([r for r in page.records if r["id"] != missed], page.next_url,
                            page.server_time)
            return page

    lossy = LosesOne(f"{harvest.url}/v2", token=TOKEN, account_id=ACCOUNT, rate_limit=FAST)
    result = sync(store, source(harvest, harvest_client=lossy), SystemClock())
    assert result.accepted == 4 and stored(store) == sorted(eid(e) for e in entries)


def test_an_interrupted_poll_resumes_from_its_last_committed_page(
        engine: Engine, harvest: HarvestEmulator) -> None:
    entries = [log(harvest, back) for back in range(9)]

    class FailsOnThirdPage(HarvestClient):
        calls = 0

        def page(self, resource: str, params: Any) -> Page:
            FailsOnThirdPage.calls += resource == "time_entries"
            if FailsOnThirdPage.calls == 3:
                raise TransientError("connection reset")
            return super().page(resource, params)

    flaky = FailsOnThirdPage(f"{harvest.url}/v2", token=TOKEN, account_id=ACCOUNT,
                             rate_limit=FAST)
    with pytest.raises(TransientError):
        sync(engine, source(harvest, harvest_client=flaky), SystemClock())
    state = cursor(engine)["time_entries"]
    # Two pages are stored: back 0-2, then from day 2 (read again) to day 4.
    assert (state["phase"], state["to"]) == ("changes", day(4))
    assert len(stored(engine)) == 5
    asked = len(harvest.requests_to("/v2/time_entries"))
    result = sync(engine, source(harvest), SystemClock())
    resumed = harvest.requests_to("/v2/time_entries")[asked]
    assert resumed[3]["to"] == day(4) and "updated_since" not in resumed[3]
    assert result.accepted == 4
    assert stored(engine) == sorted(eid(e) for e in entries)


# -- pagination always terminates ------------------------------------------------------
def test_a_server_that_ignores_the_date_bound_stops_the_poll_instead_of_looping(
        harvest: HarvestEmulator) -> None:
    for back in range(6):
        log(harvest, back)

    class IgnoresTo(HarvestClient):
        def page(self, resource: str, params: Any) -> Page:
            return super().page(resource, {k: v for k, v in params.items() if k != "to"})

    stuck = source(harvest, harvest_client=IgnoresTo(f"{harvest.url}/v2", token=TOKEN,
                                                     account_id=ACCOUNT, rate_limit=FAST))
    with pytest.raises(PermanentError, match="stopping instead of looping") as raised:
        list(stuck.poll(None))
    assert raised.value.code == "PAGINATION_LOOP"


def test_a_next_link_that_repeats_its_records_stops_the_poll(harvest: HarvestEmulator) -> None:
    for _ in range(5):
        log(harvest, 0)  # one date: the poll walks its pages with links.next

    class RepeatsFirstPage(HarvestClient):
        def follow(self, resource: str, url: str) -> Page:
            return super().follow(resource, url.replace("page=2", "page=1"))

    stuck = source(harvest, per_page=2, harvest_client=RepeatsFirstPage(
        f"{harvest.url}/v2", token=TOKEN, account_id=ACCOUNT, rate_limit=FAST))
    with pytest.raises(PermanentError, match="repeats records already read"):
        list(stuck.poll(None))


def test_a_next_link_to_another_host_is_refused(harvest: HarvestEmulator) -> None:
    with pytest.raises(PermanentError) as raised:
        client(harvest).follow("time_entries", "https://evil.example/v2/time_entries?page=2")
    assert raised.value.code == "PAGINATION_LINK"


# -- deletions and un-approvals ---------------------------------------------------------
def test_deletions_upstream_become_canonical_events_once(
        engine: Engine, harvest: HarvestEmulator) -> None:
    kept, gone, old = log(harvest, 1), log(harvest, 2), log(harvest, 40)
    moved = log(harvest, 3)
    lunch = harvest.log_expense(user=KIM, project=PROJECT, spent_date=day(1), total_cost=12.5)
    assert sync(engine, source(harvest), SystemClock()).accepted == 5
    harvest.delete("time_entries", gone["id"])
    harvest.delete("time_entries", old["id"])  # before the 35-day window: not compared
    harvest.delete("expenses", lunch["id"])
    moved = harvest.edit("time_entries", moved["id"], spent_date=day(50))  # out of the window
    sync(engine, source(harvest), SystemClock())
    deleted = [i for i in stored(engine) if i.endswith(":deleted")]
    assert deleted == sorted([f"time_entry:{gone['id']}:deleted",
                              f"expense:{lunch['id']}:deleted"])
    assert payload(engine, f"time_entry:{gone['id']}:deleted")["data"] == {
        "id": f"te_harvest_{gone['id']}", "project": "GLX-001", "source_version": None}
    assert eid(moved) in stored(engine) and eid(kept) in stored(engine)
    before = stored(engine)
    sync(engine, source(harvest), SystemClock())
    assert stored(engine) == before  # a deletion is reported once


def test_unapprovals_and_deletions_reverse_what_was_posted(
        engine: Engine, harvest: HarvestEmulator) -> None:
    erp = FakeTarget("ledger")
    hub = Hub(engine, {"ledger": erp}, clock=ManualClock())
    config = {**CONFIG, "rate_cards": [{**CONFIG["rate_cards"][0],
                                        "effective_from": "2000-01-01"}]}
    hub.activate_config(config)
    hub.ingest([project_event()], source="psa")
    reopened, deleted = log(harvest, 1, hours=2.0), log(harvest, 2, hours=3.0)
    sync(engine, source(harvest), hub.clock)
    hub.run_until_idle()
    assert [p["hours"] for p in erp.payloads("time_charge.post")] == ["2.00", "3.00"]
    harvest.unapprove("time_entries", reopened["id"])
    harvest.delete("time_entries", deleted["id"])
    sync(engine, source(harvest), hub.clock)
    hub.run_until_idle()
    assert sorted(p["charge"] for p in erp.payloads("time_charge.reverse")) == sorted([
        f"tc_te_harvest_{deleted['id']}", f"tc_te_harvest_{reopened['id']}"])
    reopened = harvest.records("time_entries")[0]
    submitted = payload(engine, eid(reopened))["data"]
    assert submitted["status"] == "submitted"


# -- mapping faults ----------------------------------------------------------------------
def test_an_entry_by_an_unknown_user_is_kept_raw_with_a_reason_and_maps_once_mapped(
        engine: Engine, harvest: HarvestEmulator) -> None:
    carols = log(harvest, 1, user=CAROL, notes="Wireframes")
    log(harvest, 1)
    result = sync(engine, source(harvest), SystemClock())
    assert (result.accepted, result.malformed) == (1, 1)
    with engine.connect() as conn:
        [(message, raw)] = conn.execute(select(exceptions.c.message, exceptions.c.raw)).all()
    assert f"Harvest time entry {carols['id']}: unknown Harvest user {CAROL} (Carol Diaz): " \
           "map it under workers in the harvest connection" in message
    assert json.loads(raw)["notes"] == "Wireframes"
    with engine.connect() as conn:  # her approved hour is leakage, with the mapping to add
        [leak] = unmapped(conn)
    assert (leak.record, leak.hours) == (f"te_harvest_{carols['id']}", Decimal("1.5"))
    assert leak.fix.startswith(f"map user {CAROL} to a worker under workers in the harvest "
                               "connection")
    assert sync(engine, source(harvest), SystemClock()).malformed == 0  # one exception only
    fixed = source(harvest, workers={**WORKERS, str(CAROL): "w-carol"})
    assert sync(engine, fixed, SystemClock()).accepted == 1  # the snapshot maps it now
    assert payload(engine, eid(carols))["data"]["worker"] == "w-carol"


def test_time_on_a_project_without_a_code_is_malformed(
        store: Engine, harvest: HarvestEmulator) -> None:
    harvest.seed(projects=[{"id": 99, "name": "Internal", "client_id": 5735774}])
    harvest.log_time(user=KIM, project=99, task=TASK, spent_date=day(0), hours=1.0)
    result = sync(store, source(harvest), SystemClock())
    assert result.malformed == 1
    with store.connect() as conn:
        message = conn.execute(select(exceptions.c.message)).scalar_one()
    assert "Harvest project 99 (Internal) has no code" in message


# -- limits ------------------------------------------------------------------------------
def test_a_429_storm_is_ridden_out_without_loss(store: Engine,
                                                harvest: HarvestEmulator) -> None:
    entries = [log(harvest, back) for back in range(6)]
    harvest.faults.script(["429:0"] * 12)
    result = sync(store, source(harvest, harvest_client=client(harvest, max_429_retries=20)),
                  SystemClock())
    assert result.accepted == 6 and stored(store) == sorted(eid(e) for e in entries)
    assert sum(1 for r in harvest.requests_to() if r[4] == 429) == 12


def test_the_client_keeps_within_the_documented_rate(store: Engine,
                                                     harvest: HarvestEmulator) -> None:
    harvest.rate_limit, harvest.window_seconds = 10, 0.5  # stands for 100 per 15 s
    for back in range(8):
        log(harvest, back)
    paced = client(harvest, rate_limit=harvest_rate_limit(10, 0.5))
    result = sync(store, source(harvest, per_page=1, harvest_client=paced), SystemClock())
    assert result.accepted == 8
    assert len(harvest.requests_to()) > 20  # enough calls for the limit to matter
    assert harvest.max_in_window(0.5) <= 10
    assert all(r[4] == 200 for r in harvest.requests_to())


def test_an_over_eager_client_is_slowed_by_429s_and_loses_nothing(
        store: Engine, harvest: HarvestEmulator) -> None:
    harvest.rate_limit, harvest.window_seconds = 6, 0.5
    entries = [log(harvest, back) for back in range(6)]
    eager = client(harvest, max_retry_wait=0.5, max_429_retries=20)
    result = sync(store, source(harvest, per_page=1, harvest_client=eager), SystemClock())
    assert result.accepted == 6 and stored(store) == sorted(eid(e) for e in entries)
    assert any(r[4] == 429 for r in harvest.requests_to())
    assert harvest.max_in_window(0.5) <= 6


def test_the_connector_builds_from_a_connection_with_the_documented_limit(
        harvest: HarvestEmulator) -> None:
    entry = log(harvest, 0)
    connection = Connection("harvest", "harvest", f"{harvest.url}/v2",
                            credentials={"token": TOKEN, "account_id": ACCOUNT},
                            options={"workers": json.dumps(WORKERS), "per_page": "50",
                                     "deletion_window_days": "7", "expenses": "false"})
    assert CONNECTOR.source and CONNECTOR.target and CONNECTOR.webhooks is None
    built = CONNECTOR.source(connection)
    events = [e for page in built.poll(None) for e in page.events]
    assert [e["id"] for e in events] == [eid(entry)]
    assert not any(r[2] == "/v2/expenses" for r in harvest.requests_to())
    target = CONNECTOR.target(connection)
    limit = target.rate_limit
    assert (limit.requests + limit.burst, limit.per_seconds) == (100, 15.0)


# -- write-back --------------------------------------------------------------------------
def writeback(i: int, code: str, fields: dict[str, Any], **extra: Any) -> OutboundCommand:
    return OutboundCommand(i, "harvest", "psa.writeback", f"key-{i}", f"project:{code}",
                           {"system": "harvest", "record": code, "fields": fields, **extra})


ERP_IDS = {"erp_project_id": "L-000002", "erp_customer_id": "L-000001"}


def test_write_back_creates_the_official_project_under_its_client_once(
        harvest: HarvestEmulator) -> None:
    target = HarvestTarget(client(harvest))
    command = writeback(1, "NEW-002", {**ERP_IDS, "project_code": "NEW-002"},
                        project_name="Initech data platform", customer_name="Initech Inc")
    [result] = target.send([command])
    assert result.status is ResultStatus.APPLIED
    project = harvest.project_by_code("NEW-002")
    assert project is not None and result.external_id == str(project["id"])
    assert (project["name"], project["client"]["name"]) == ("Initech data platform",
                                                            "Initech Inc")
    assert project["notes"] == f"{MARKER}\nERP project: L-000002\nERP customer: L-000001"
    writes = [r for r in harvest.requests_to() if r[1] != "GET"]
    assert [target.send([command])[0].status] == [ResultStatus.APPLIED]
    assert [r for r in harvest.requests_to() if r[1] != "GET"] == writes  # a repeat writes nothing
    assert len(harvest.records("clients")) == 2


def test_write_back_adopts_an_uncoded_project_and_keeps_the_users_notes(
        harvest: HarvestEmulator) -> None:
    harvest.seed(projects=[{"id": 77, "name": "Initech data platform", "client_id": 5735774,
                            "notes": "Kick-off on Monday."}])
    target = HarvestTarget(client(harvest))
    [result] = target.send([writeback(1, "NEW-002", ERP_IDS,
                                      project_name="Initech data platform",
                                      customer_name="globex llc")])
    assert result.external_id == "77"
    adopted = harvest.project_by_code("NEW-002")
    assert adopted is not None and adopted["id"] == 77
    assert adopted["notes"].startswith("Kick-off on Monday.\n\n" + MARKER)
    [paid] = target.send([writeback(2, "NEW-002", {
        "invoice": "inv_NEW-002_2026-03-31", "invoice_status": "paid",
        "invoice_total": "700.00"})])
    assert paid.status is ResultStatus.APPLIED
    notes = harvest.project_by_code("NEW-002")["notes"]  # type: ignore[index]
    assert notes.endswith("ERP customer: L-000001\n"
                          "Invoice inv_NEW-002_2026-03-31: paid, total 700.00")
    assert len(harvest.records("projects")) == 2


def test_write_back_rejects_what_it_cannot_place(harvest: HarvestEmulator) -> None:
    target = HarvestTarget(client(harvest))
    unknown, bad = target.send([
        writeback(1, "NOPE-1", {"invoice": "inv_1", "invoice_status": "paid"}),
        OutboundCommand(2, "harvest", "psa.frobnicate", "key-2", "x", {"record": "GLX-001"})])
    assert (unknown.status, unknown.code) == (ResultStatus.REJECTED, "PROJECT_NOT_FOUND")
    assert "give the project its code in Harvest" in (unknown.message or "")
    assert (bad.status, bad.code) == (ResultStatus.REJECTED, "VALIDATION")


def test_activation_writes_the_official_project_to_harvest_through_a_lost_ack(
        engine: Engine, harvest: HarvestEmulator) -> None:
    """A won deal: the ERP confirms its project, the write-back creates it in
    Harvest (whose answer to the create is lost: the resend finds it by code),
    and time logged against it flows back in and is priced."""
    erp, crm = FakeTarget("ledger"), FakeTarget("crm")
    hub = Hub(engine, {"ledger": erp, "crm": crm, "harvest": HarvestTarget(client(harvest))},
              clock=ManualClock(), settings=HubSettings(
                  routes={"erp": "ledger", "crm": "crm", "psa": "harvest"},
                  retry=RetryPolicy(base_seconds=0.01, cap_seconds=0.05)))
    hub.activate_config({**CONFIG, "psa_system": "harvest", "rate_cards": [
        {**CONFIG["rate_cards"][0], "effective_from": "2000-01-01"}]})
    hub.ingest([{"type": "opportunity.closed_won", "id": "deal-1-won",
                 "at": "2026-03-01T09:00:00Z", "data": {
                     "opportunity": {"id": "deal-1", "name": "Initech data platform",
                                     "amount": "50000.00", "currency": "USD",
                                     "close_date": "2026-03-01"},
                     "customer": {"id": "co-1", "name": "Initech Inc", "currency": "USD",
                                  "billing_country": "US"},
                     "contract": {"id": "ct-1", "billing_model": "time_and_materials",
                                  "currency": "USD", "legal_entity": "US01",
                                  "start": "2000-01-01"},
                     "project": {"code": "NEW-002", "name": "Initech data platform"}}}],
               source="hubspot")
    # The write-back's third call creates the project; its answer never arrives.
    harvest.faults.script(["ok", "ok", "ok", "lost_ack"])
    hub.run_until_idle()
    [project] = [p for p in harvest.records("projects") if p["code"] == "NEW-002"]
    assert project["client"]["name"] == "Initech Inc"
    erp_project = erp.applied[next(c.idempotency_key for c in erp.effects
                                   if c.kind == "project.upsert")]
    assert f"ERP project: {erp_project}" in project["notes"]
    # The one create the emulator saw is the one whose answer was lost (an
    # unanswered request is not logged): the resend found it by its code.
    assert harvest.faults.injected and not [
        r for r in harvest.requests_to("/v2/projects") if r[1] == "POST"]
    entry = harvest.log_time(user=KIM, project=project["id"], task=TASK, spent_date=day(0),
                             hours=4.0, approved=True)
    sync(engine, source(harvest), hub.clock)
    hub.run_until_idle()
    [charge] = erp.payloads("time_charge.post")
    assert (charge["time_entry"], charge["project"], charge["amount"]) == (
        f"te_harvest_{entry['id']}", "NEW-002", "700.00")  # 4 h x Alice's 175.00
