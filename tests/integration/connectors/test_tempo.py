"""The Tempo connector against its emulator over real HTTP: polling worklogs
into the inbox at their boundaries (ties across pages and polls, an edit or a
deletion mid-poll, a resume after a crash, a search that never ends),
approvals given, taken back and given again, edits after approval, deletions,
unmapped authors, Jira's signed webhooks (each worklog read again from Tempo),
the 5 requests a second, and the connector built from a connection."""

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

from billbridge.connectors.base import Connection, PermanentError, RateLimit, TransientError
from billbridge.connectors.generic.client import LedgerTarget
from billbridge.connectors.generic.emulator import LedgerEmulator
from billbridge.connectors.tempo import CONNECTOR
from billbridge.connectors.tempo.client import TempoClient
from billbridge.connectors.tempo.emulator import TempoEmulator
from billbridge.connectors.tempo.mapping import MappingConfig
from billbridge.connectors.tempo.source import TempoSource
from billbridge.connectors.tempo.webhooks import TempoWebhooks
from billbridge.emulation.faults import Fault, FaultRule
from billbridge.engine.clock import ManualClock, SystemClock
from billbridge.engine.hub import Hub
from billbridge.engine.reconcile import unmapped
from billbridge.engine.sync import load_cursor, sync
from billbridge.store.tables import exceptions, inbox
from billbridge.web import HubServer
from conftest import CONFIG as BASE_CONFIG
from conftest import project_event
from fakes import FakeTarget

TOKEN, SECRET = "tempo-token", "jira-webhook-secret"
FAST = RateLimit(10_000, 1, burst=10_000)
ALICE, BOB, DAVE = "5b10a2844c20165700ede21g", "5b10ac8d82e05b22cc7d4ef5", "70121:dave"
CONFIG = MappingConfig(workers={ALICE: "w-alice", BOB: "w-bob"}, tasks={"10001": "dev"})
TODAY = datetime(2026, 3, 20, 12, tzinfo=UTC)
SAME_SECOND = "2026-03-05T10:00:00Z"
SEARCH = "/4/worklogs/search"


@pytest.fixture
def tempo() -> Iterator[TempoEmulator]:
    with TempoEmulator(token=TOKEN, rate_limit=100_000) as em:
        em.seed(users={ALICE: "Alice Ng", BOB: "Bob Ruiz", DAVE: "Dave Kim"},
                accounts={"GLX-001": "Globex ERP rollout"}, issues={10001: "GLX-1"})
        yield em  # type: ignore[misc]


def client(em: TempoEmulator, **kwargs: Any) -> TempoClient:
    kwargs.setdefault("rate_limit", FAST)
    return TempoClient(f"{em.url}/4", token=TOKEN, **kwargs)


def source(em: TempoEmulator, limit: int = 3, window: int = 35, **kwargs: Any) -> TempoSource:
    """A poller on the emulator that compares id sets on every poll."""
    return TempoSource(client(em, **kwargs), config=CONFIG, limit=limit, now=lambda: TODAY,
                       deletion_window_days=window, reconcile_every=0)


def log(em: TempoEmulator, n: int = 1, *, author: str = ALICE, **fields: Any) -> list[int]:
    fields.setdefault("seconds", 28800)
    fields.setdefault("day", "2026-03-02")
    return [em.log(author=author, issue=10001, account="GLX-001", **fields)["tempoWorklogId"]
            for _ in range(n)]


def stored(engine: Engine, prefix: str = "time_entry:") -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.execute(select(inbox.c.event_id).where(
            inbox.c.source == "tempo", inbox.c.event_id.startswith(prefix))).scalars())


def payloads(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(inbox.c.event_id, inbox.c.payload)
                            .where(inbox.c.status != "failed")).all()
    return {r.event_id: json.loads(r.payload) for r in rows}


def event_ids(em: TempoEmulator, *ids: int) -> list[str]:
    """The event ids of worklogs as the emulator holds them now, under their approval."""
    found = []
    for i in ids:
        w = em.render(i)
        status = em.render_approval(w["author"]["accountId"], w["startDate"])["status"]
        found.append(f"time_entry:{w['jiraWorklogId']}:{w['updatedAt']}:{status['key']}:"
                     f"{status['updatedAt'] or ''}")
    return sorted(found)


def jira_id(em: TempoEmulator, tempo_id: int) -> int:
    return int(em.render(tempo_id)["jiraWorklogId"])


# -- polling ------------------------------------------------------------------------------------
def test_approved_worklogs_sync_in_exact_hours_and_a_repoll_adds_nothing(
        engine: Engine, tempo: TempoEmulator) -> None:
    ids = log(tempo, 5, seconds=5400) + log(tempo, seconds=1000, billable=0)
    ids += log(tempo, author=BOB, day="2026-03-03")
    tempo.act(ALICE, "2026-03-02", "submit")
    tempo.act(ALICE, "2026-03-02", "approve")
    result = sync(engine, source(tempo), SystemClock())
    assert stored(engine) == event_ids(tempo, *ids) and result.malformed == 0
    assert result.pages >= 3
    events = payloads(engine)
    first = events[event_ids(tempo, ids[0])[0]]["data"]
    assert first == {"id": f"te_tempo_{jira_id(tempo, ids[0])}", "worker": "w-alice",
                     "project": "GLX-001", "task": "dev", "work_date": "2026-03-02",
                     "hours": "1.50", "billable": True, "notes": "", "status": "approved",
                     "source_version": first["source_version"]}
    unbilled = events[event_ids(tempo, ids[5])[0]]["data"]
    assert (unbilled["hours"], unbilled["billable"]) == ("0.28", False)  # 1,000 s, exactly
    assert events[event_ids(tempo, ids[6])[0]]["data"]["status"] == "submitted"
    assert sync(engine, source(tempo), SystemClock()).accepted == 0


def test_worklogs_sharing_the_cursor_second_across_pages_and_polls_are_neither_skipped_nor_doubled(
        engine: Engine, tempo: TempoEmulator) -> None:
    ids = log(tempo, 8, updated_at=SAME_SECOND)
    first = sync(engine, source(tempo), SystemClock())
    assert stored(engine) == event_ids(tempo, *ids) and first.accepted == 8
    # Another worklog committed later with a stamp in the same second as the cursor.
    ids += log(tempo, updated_at=SAME_SECOND)
    second = sync(engine, source(tempo), SystemClock())
    assert second.accepted == 1 and stored(engine) == event_ids(tempo, *ids)
    assert sync(engine, source(tempo), SystemClock()).accepted == 0


@pytest.mark.parametrize("change", ["edit", "delete"])
def test_a_change_during_the_poll_cannot_hide_another_worklog(tempo: TempoEmulator,
                                                                change: str) -> None:
    ids = [log(tempo, updated_at=f"2026-03-05T10:00:0{i}Z")[0] for i in range(1, 8)]
    pages = source(tempo, limit=2, window=0).poll(None)
    seen = [e["id"] for e in next(pages).events]  # worklogs 1-2
    if change == "edit":
        tempo.edit(ids[0], description="edited")  # moves to the end of the order
    else:
        tempo.delete(ids[0])  # every later offset shifts by one
    seen += [e["id"] for p in pages for e in p.events if isinstance(e, dict)]
    assert set(event_ids(tempo, *ids[1:])) <= set(seen)


def test_an_interrupted_poll_resumes_from_its_last_committed_page(
        engine: Engine, tempo: TempoEmulator) -> None:
    ids = [log(tempo, updated_at=f"2026-03-05T10:00:0{i}Z")[0] for i in range(1, 10)]
    tempo.faults.script([FaultRule(Fault.OK, path_prefix=SEARCH),
                         FaultRule(Fault.OK, path_prefix=SEARCH),
                         FaultRule(Fault.SERVER_ERROR, path_prefix=SEARCH)])
    with pytest.raises(TransientError):
        sync(engine, source(tempo, window=0), SystemClock())
    with engine.connect() as conn:
        cursor = json.loads(load_cursor(conn, "tempo", "default") or "{}")
    # Two pages committed with their cursor: 1-3, then 2-4 asked again from 3's second less 1.
    assert len(stored(engine)) == 4 and cursor["since"] == "2026-03-05T10:00:04Z"
    asked = sum(1 for r in tempo.requests if r[2] == SEARCH)
    sync(engine, source(tempo, window=0), SystemClock())
    assert stored(engine) == event_ids(tempo, *ids)
    # Resumed from 4's second less the lookback (3-5, 4-6, 5-7, 6-8, 7-9: a page of
    # whole seconds moves on by its newest), not from the beginning (eight pages).
    assert sum(1 for r in tempo.requests if r[2] == SEARCH) - asked == 5


def test_a_search_that_ignores_the_offset_stops_with_pagination_loop(
        tempo: TempoEmulator) -> None:
    log(tempo, 7, updated_at=SAME_SECOND)
    tempo.ignore_offset = True  # every offset answers the first page
    with pytest.raises(PermanentError, match="stopping instead of looping") as raised:
        list(source(tempo, limit=2).poll(None))
    assert raised.value.code == "PAGINATION_LOOP"


def test_an_unmapped_author_and_time_without_an_account_are_kept_raw_with_a_reason(
        engine: Engine, tempo: TempoEmulator) -> None:
    # Dave's first, long before the cursor: only the id-set pass reads it again.
    ids = log(tempo) + log(tempo, author=DAVE, updated_at="2026-03-02T08:00:00Z")
    ids.append(tempo.log(author=ALICE, issue=10001, day="2026-03-02",
                         seconds=3600)["tempoWorklogId"])
    tempo.act(DAVE, "2026-03-02", "approve")
    result = sync(engine, source(tempo), SystemClock())
    assert result.malformed == 2
    with engine.connect() as conn:
        found = conn.execute(select(exceptions.c.message, exceptions.c.raw)).all()
    messages = " | ".join(m for m, _raw in found)
    assert f'author {DAVE} is not mapped to a worker; add "{DAVE}"' in messages
    assert "has no Tempo account (_Account_)" in messages
    assert any(DAVE in raw for _m, raw in found)
    with engine.connect() as conn:  # his approved 8 h are leakage, with the mapping to add
        [leak] = unmapped(conn)
    assert (leak.record, leak.hours) == (f"te_tempo_{jira_id(tempo, ids[1])}", Decimal("8.00"))
    assert leak.fix.startswith(f"map user {DAVE} to a worker under workers in the tempo "
                               "connection")
    assert sync(engine, source(tempo), SystemClock()).malformed == 0  # one exception only
    fixed = TempoSource(client(tempo), now=lambda: TODAY, reconcile_every=0,
                        config=MappingConfig(workers={ALICE: "w-alice", DAVE: "w-dave"}))
    assert sync(engine, fixed, SystemClock()).accepted == 1  # the id-set pass maps it now
    assert payloads(engine)[event_ids(tempo, ids[1])[0]]["data"]["worker"] == "w-dave"


def test_a_worklog_no_search_returned_is_emitted_by_the_id_set_pass(
        engine: Engine, tempo: TempoEmulator) -> None:
    (seen,) = log(tempo)
    sync(engine, source(tempo), SystemClock())
    # Committed late with a stamp long before the cursor: no search will return it.
    (late,) = log(tempo, updated_at="2026-03-02T08:00:00Z")
    assert sync(engine, source(tempo), SystemClock()).accepted == 1
    assert stored(engine) == event_ids(tempo, seen, late)


# -- approvals, edits after approval, deletions -------------------------------------------------
def test_an_approval_taken_back_given_again_and_an_edit_after_it_are_each_a_newer_version(
        engine: Engine, tempo: TempoEmulator) -> None:
    (worklog,) = log(tempo)
    tempo.act(ALICE, "2026-03-02", "approve")
    sync(engine, source(tempo), SystemClock())
    approved = payloads(engine)[event_ids(tempo, worklog)[0]]["data"]
    stamp = tempo.render(worklog)["updatedAt"]
    tempo.act(ALICE, "2026-03-02", "reopen")
    assert tempo.render(worklog)["updatedAt"] == stamp  # the worklog itself never moved
    sync(engine, source(tempo), SystemClock())
    reopened = payloads(engine)[event_ids(tempo, worklog)[0]]["data"]
    assert reopened["status"] == "submitted"
    assert reopened["source_version"] > approved["source_version"]
    tempo.act(ALICE, "2026-03-02", "approve")
    sync(engine, source(tempo), SystemClock())
    again = payloads(engine)[event_ids(tempo, worklog)[0]]["data"]
    assert again["status"] == "approved" and again["source_version"] > reopened["source_version"]
    tempo.edit(worklog, timeSpentSeconds=9000, billableSeconds=9000)  # an admin's correction
    sync(engine, source(tempo), SystemClock())
    edited = payloads(engine)[event_ids(tempo, worklog)[0]]["data"]
    assert (edited["hours"], edited["status"]) == ("2.50", "approved")
    assert edited["source_version"] > again["source_version"]
    assert len(stored(engine)) == 4


def test_an_approval_taken_back_while_one_worklog_is_edited_reaches_every_worklog_of_the_sheet(
        engine: Engine, tempo: TempoEmulator) -> None:
    (untouched,) = log(tempo, updated_at="2026-03-02T18:00:00Z")  # long before the cursor
    (edited,) = log(tempo)
    tempo.act(ALICE, "2026-03-02", "approve")
    sync(engine, source(tempo), SystemClock())
    tempo.act(ALICE, "2026-03-02", "reopen")
    tempo.edit(edited, description="fixed")  # read by the changes step, under the new status
    sync(engine, source(tempo), SystemClock())
    events = payloads(engine)
    assert [events[i]["data"]["status"] for i in event_ids(tempo, edited, untouched)] == [
        "submitted", "submitted"]


def test_deleted_worklogs_become_deletion_events_once_confirmed_by_tempo(
        engine: Engine, tempo: TempoEmulator) -> None:
    ids = log(tempo, 3) + log(tempo, day="2025-12-01")
    sync(engine, source(tempo), SystemClock())
    gone = jira_id(tempo, ids[1])
    tempo.delete(ids[1])
    tempo.edit(ids[2], startDate="2025-01-02")  # moved out of the window: not deleted
    sync(engine, source(tempo), SystemClock())
    events = payloads(engine)
    assert events[f"time_entry:{gone}:deleted"]["data"] == {
        "id": f"te_tempo_{gone}", "project": "GLX-001", "source_version": None}
    assert [i for i in events if i.endswith(":deleted")] == [f"time_entry:{gone}:deleted"]
    assert sync(engine, source(tempo), SystemClock()).accepted == 0


def test_approval_taken_back_edits_and_deletions_reach_the_erps_live_postings(
        engine: Engine, tempo: TempoEmulator) -> None:
    with LedgerEmulator(token="t") as erp:
        ledger = LedgerTarget(erp.url, "t")
        hub = Hub(engine, {"ledger": ledger}, clock=ManualClock())
        hub.activate_config(BASE_CONFIG)
        hub.ingest([project_event()], source="psa")

        def live() -> dict[str, tuple[str, str]]:
            sync(engine, source(tempo), hub.clock)
            hub.run_until_idle()
            return {p.charge: (str(p.hours), str(p.amount)) for p in ledger.live_postings()}

        kept, dropped = log(tempo, seconds=28800) + log(tempo, seconds=9000)
        tempo.act(ALICE, "2026-03-02", "approve")
        charge = {w: f"tc_te_tempo_{jira_id(tempo, w)}" for w in (kept, dropped)}
        assert live() == {charge[kept]: ("8.00", "1400.00"), charge[dropped]: ("2.50", "437.50")}
        tempo.act(ALICE, "2026-03-02", "reopen")
        assert live() == {}  # no longer approved: both reversed at the ERP
        tempo.act(ALICE, "2026-03-02", "approve")
        tempo.edit(kept, timeSpentSeconds=3600, billableSeconds=3600)  # corrected after
        tempo.delete(dropped)
        assert live() == {charge[kept]: ("1.00", "175.00")}


# -- Jira's webhooks -----------------------------------------------------------------------------
@pytest.fixture
def hub_url(engine: Engine, tempo: TempoEmulator) -> Iterator[str]:
    receiver = TempoWebhooks(SECRET, client(tempo), config=CONFIG)
    server = HubServer(Hub(engine, {"ledger": FakeTarget()}), port=0,
                       webhooks={"tempo": receiver})
    server.start()
    try:
        yield f"{server.url}/v1/webhooks/tempo"
    finally:
        server.stop()


def test_webhooks_with_good_forged_stale_and_missing_signatures(
        engine: Engine, tempo: TempoEmulator, hub_url: str) -> None:
    (worklog,) = log(tempo)
    good = tempo.send_webhook(hub_url, "created", worklog, secret=SECRET)
    forged = tempo.send_webhook(hub_url, "created", worklog, secret="wrong")
    stale = tempo.send_webhook(hub_url, "created", worklog, secret=SECRET,
                               timestamp_ms=int((time.time() - 301) * 1000))
    unsigned = tempo.send_webhook(hub_url, "created", worklog, secret=SECRET, signature="")
    assert [r.status_code for r in (good, forged, stale, unsigned)] == [202, 401, 401, 401]
    assert "does not match" in forged.json()["message"]
    assert "stale" in stale.json()["message"] and "not signed" in unsigned.json()["message"]
    assert stored(engine) == event_ids(tempo, worklog)


def test_webhook_changes_are_read_again_from_tempo_and_a_poll_stores_each_once(
        engine: Engine, tempo: TempoEmulator, hub_url: str) -> None:
    kept, dropped = log(tempo, 2)
    tempo.act(ALICE, "2026-03-02", "approve")
    gone = jira_id(tempo, dropped)
    sync(engine, source(tempo), SystemClock())
    tempo.edit(kept, timeSpentSeconds=3600, billableSeconds=3600)
    tempo.delete(dropped)
    for _replay in range(2):
        assert tempo.send_webhook(hub_url, "updated", kept, secret=SECRET).status_code == 202
        assert tempo.send_webhook(hub_url, "deleted", dropped, secret=SECRET,
                                  jira_id=gone).status_code == 202
    events = payloads(engine)
    assert events[event_ids(tempo, kept)[0]]["data"]["hours"] == "1.00"
    assert events[f"time_entry:{gone}:deleted"]["type"] == "time_entry.deleted"
    before = stored(engine)
    assert sync(engine, source(tempo), SystemClock()).accepted == 0
    assert stored(engine) == before


def test_a_claimed_deletion_of_a_worklog_tempo_still_has_deletes_nothing(
        engine: Engine, tempo: TempoEmulator, hub_url: str) -> None:
    (worklog,) = log(tempo)
    answer = tempo.send_webhook(hub_url, "deleted", worklog, secret=SECRET)
    assert answer.status_code == 202
    assert stored(engine) == event_ids(tempo, worklog)  # its state as Tempo holds it


def test_a_webhook_answers_503_when_tempo_cannot_be_reached(
        engine: Engine, tempo: TempoEmulator, hub_url: str) -> None:
    (worklog,) = log(tempo)
    tempo.faults.script(["503"])
    answer = tempo.send_webhook(hub_url, "created", worklog, secret=SECRET)
    assert answer.status_code == 503 and stored(engine) == []


# -- limits ----------------------------------------------------------------------------------------
def test_the_client_keeps_within_five_requests_a_second_and_429s_lose_nothing(
        engine: Engine, tempo: TempoEmulator) -> None:
    tempo.rate_limit, tempo.window_seconds = 5, 1.0  # Tempo's gateway
    ids = [log(tempo, updated_at=f"2026-03-05T10:00:0{i}Z")[0] for i in range(1, 9)]
    result = sync(engine, TempoSource(TempoClient(f"{tempo.url}/4", token=TOKEN),
                                      config=CONFIG, limit=2, now=lambda: TODAY,
                                      reconcile_every=0), SystemClock())
    assert result.malformed == 0 and stored(engine) == event_ids(tempo, *ids)
    assert len(tempo.requests) > 6 and all(r[3] == 200 for r in tempo.requests)
    assert tempo.max_in_window(1.0) <= 5
    tempo.requests.clear()
    tempo.rate_limit = 100_000
    tempo.faults.script(["429:0"] * 4)
    eager = source(tempo, limit=2, max_retry_wait=0.01)
    assert sync(engine, eager, SystemClock()).accepted == 0
    assert sum(1 for r in tempo.requests if r[3] == 429) >= 4


def test_a_wrong_token_stops_the_poll_with_one_configuration_error(
        tempo: TempoEmulator) -> None:
    log(tempo)
    stranger = TempoSource(TempoClient(f"{tempo.url}/4", token="revoked", rate_limit=FAST),
                           config=CONFIG)
    with pytest.raises(PermanentError) as refused:
        list(stranger.poll(None))
    assert refused.value.code == "TARGET_AUTH"
    assert str(refused.value) == (
        "Tempo worklog search: HTTP 401: 401 Unauthorized: the token was refused; give the "
        "connection a valid Tempo API token (Tempo > Settings > API integration) with access "
        "to worklogs")


def test_the_connector_builds_from_environment_strings(tempo: TempoEmulator) -> None:
    (worklog,) = log(tempo)
    connection = Connection("tempo", "tempo", f"{tempo.url}/4", credentials={
        "token": TOKEN, "webhook_secret": SECRET}, options={
        "workers": json.dumps({ALICE: "w-alice"}), "accounts": '{"GLX-001": "GLX-001"}',
        "limit": "50", "requests_per_second": "200", "approved_statuses": "APPROVED"})
    assert CONNECTOR.source and CONNECTOR.webhooks and CONNECTOR.target is None
    events = [e for p in CONNECTOR.source(connection).poll(None) for e in p.events]
    assert [e["id"] for e in events if isinstance(e, dict)] == event_ids(tempo, worklog)
    assert isinstance(CONNECTOR.webhooks(connection), TempoWebhooks)


def test_tasks_named_by_jira_issue_key_are_read_from_jira_once_a_poll(
        tempo: TempoEmulator) -> None:
    tempo.seed(issues={10002: "GLX-2"})
    ids = [*log(tempo, 2), tempo.log(author=ALICE, issue=10002, account="GLX-001",
                                     day="2026-03-03", seconds=3600)["tempoWorklogId"]]
    connection = Connection("tempo", "tempo", f"{tempo.url}/4", credentials={
        "token": TOKEN, "jira_email": "jira@example.com", "jira_api_token": "jira-token"},
        options={"workers": {ALICE: "w-alice"}, "tasks": {"GLX-1": "dev"},
                 "jira_url": tempo.url, "requests_per_second": "200",
                 "jira_requests_per_second": "200", "deletion_window_days": "0"})
    assert CONNECTOR.source
    events = [e for p in CONNECTOR.source(connection).poll(None) for e in p.events]
    assert [e["data"]["task"] for e in events] == ["dev", "dev", "GLX-2"]
    assert sum(1 for r in tempo.requests if r[2].startswith("/rest/api/3/issue/")) == 2
    assert len(ids) == 3
    wrong = Connection("tempo-x", "tempo", f"{tempo.url}/4", credentials={
        "token": TOKEN, "jira_email": "jira@example.com", "jira_api_token": "stale"},
        options={**connection.options})
    with pytest.raises(PermanentError, match="Jira issue 10001: HTTP 401: You are not "
                                             "authenticated") as refused:
        list(CONNECTOR.source(wrong).poll(None))
    assert refused.value.code == "TARGET_AUTH"


def test_the_emulator_runs_from_the_cli_by_its_vendor_name() -> None:
    process = subprocess.Popen([sys.executable, "-m", "billbridge", "emulator", "run",
                                "tempo"], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split("listening on ")[1].strip()
        seeded = httpx.post(f"{url}/_emulator/seed", json={
            "users": {ALICE: "Alice Ng"}, "accounts": {"GLX-001": "Globex"},
            "issues": {"10001": "GLX-1"},
            "worklogs": [{"author": ALICE, "issue": 10001, "account": "GLX-001",
                          "day": "2026-03-02", "seconds": 5400}],
            "timesheets": [{"author": ALICE, "day": "2026-03-02", "action": "approve"}]})
        assert seeded.status_code == 200, seeded.text
        answer = httpx.get(f"{url}/4/worklogs", params={"from": "2026-03-01",
                                                         "to": "2026-03-31"},
                           headers={"Authorization": "Bearer tempo-token"})
        assert answer.status_code == 200
        assert [w["timeSpentSeconds"] for w in answer.json()["results"]] == [5400]
    finally:
        process.terminate()
        process.wait(timeout=10)
