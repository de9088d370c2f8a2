"""``tempo-api-python-client`` (0.12.0), unchanged, against the emulator: if
that client can create, page through (following ``metadata.next``), search,
update and delete worklogs, read timesheet approvals, accounts and periods,
and meets Tempo's error shapes, the emulator's paths, parameters and JSON are
the ones that client was written against, and what it writes our source reads."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from tempoapiclient.client_v4 import Tempo  # type: ignore[import-untyped]

from billbridge.connectors.tempo.client import TempoClient
from billbridge.connectors.tempo.emulator import TempoEmulator
from billbridge.connectors.tempo.mapping import MappingConfig
from billbridge.connectors.tempo.source import TempoSource

TOKEN = "tempo-token"
ALICE = "5b10a2844c20165700ede21g"
ACCOUNT = [{"key": "_Account_", "value": "GLX-001"}]


@pytest.fixture
def tempo() -> Iterator[TempoEmulator]:
    with TempoEmulator(token=TOKEN, rate_limit=100_000) as em:
        em.seed(users={ALICE: "Alice Ng"}, accounts={"GLX-001": "Globex ERP rollout"},
                issues={10001: "GLX-1"})
        yield em  # type: ignore[misc]


def official(em: TempoEmulator, token: str = TOKEN, limit: int = 2) -> Any:
    client = Tempo(auth_token=token, base_url=f"{em.url}/4", limit=limit)
    client._session.trust_env = False  # this machine's CA bundle variables (docs/connectors.md)
    return client


def test_worklogs_written_by_the_official_client_page_back_and_reach_our_source(
        tempo: TempoEmulator) -> None:
    client = official(tempo)
    made = [client.create_worklog(ALICE, 10001, f"2026-03-0{d}", 3600 * d,
                                  billableSeconds=3600 * d, description=f"day {d}",
                                  startTime="9:30 am", attributes=ACCOUNT)
            for d in range(1, 6)]
    assert made[0]["startTime"] == "09:30:00" and made[0]["issue"]["id"] == 10001
    listed = client.get_worklogs("2026-03-01", "2026-03-31")  # limit 2: follows metadata.next
    assert [w["tempoWorklogId"] for w in listed] == [w["tempoWorklogId"] for w in made]
    assert len(tempo.requests) == 5 + 3
    changed = client.get_worklogs("2026-03-01", "2026-03-31", updatedFrom="2026-03-01")
    assert len(changed) == 5  # updatedFrom as the client sends it: a date
    mine = client.get_worklogs("2026-03-02", "2026-03-03", accountId=ALICE)
    assert [w["startDate"] for w in mine] == ["2026-03-02", "2026-03-03"]
    polled = [e for page in TempoSource(TempoClient(f"{tempo.url}/4", token=TOKEN),
                                        config=MappingConfig(workers={ALICE: "w-alice"}),
                                        now=lambda: datetime(2026, 3, 20, tzinfo=UTC),
                                        reconcile_every=0).poll(None) for e in page.events]
    assert [(e["data"]["hours"], e["data"]["project"], e["data"]["notes"]) for e in polled] == [
        (f"{d}.00", "GLX-001", f"day {d}") for d in range(1, 6)]


def test_search_update_and_delete_through_the_official_client(tempo: TempoEmulator) -> None:
    client = official(tempo, limit=10)
    first, second = (client.create_worklog(ALICE, 10001, "2026-03-02", 1800, attributes=ACCOUNT)
                     for _ in range(2))
    found = client.search_worklogs("2026-03-01", "2026-03-31", authorIds=[ALICE],
                                   issueIds=[10001], offset=0, limit=1)
    assert found["metadata"]["count"] == 1 and "next" in found["metadata"]
    assert found["results"][0]["tempoWorklogId"] == first["tempoWorklogId"]
    updated = client.update_worklog(first["tempoWorklogId"], ALICE, "2026-03-02", 5400,
                                    billableSeconds=3600)
    assert (updated["timeSpentSeconds"], updated["billableSeconds"]) == (5400, 3600)
    assert updated["updatedAt"] > first["updatedAt"]
    assert client.delete_worklog(second["tempoWorklogId"]) == {}  # 204, no body
    assert [w["tempoWorklogId"] for w in client.get_worklogs("2026-03-01", "2026-03-31")] == [
        first["tempoWorklogId"]]
    with pytest.raises(SystemExit):  # the client's way of saying 404
        client.get_worklogs("2026-03-01", "2026-03-31", worklogId=second["tempoWorklogId"])
    client._advanced_mode = True  # the raw answer: Tempo's JSON error for a 404
    missing = client.get(f"/worklogs/{second['tempoWorklogId']}")
    assert missing.status_code == 404 and "does not exist" in missing.json()["errors"]["message"]


def test_approvals_accounts_and_periods_through_the_official_client(
        tempo: TempoEmulator) -> None:
    client = official(tempo)
    client.create_worklog(ALICE, 10001, "2026-03-02", 3600, attributes=ACCOUNT)
    opened = client.get_timesheet_approvals("2026-03-02", "2026-03-02", userId=ALICE)
    assert opened["status"]["key"] == "OPEN"
    assert opened["period"] == {"from": "2026-03-01", "to": "2026-03-31"}
    tempo.act(ALICE, "2026-03-02", "submit")
    waiting = client.get_timesheet_approvals_waiting()
    assert [a["user"]["accountId"] for a in waiting] == [ALICE]
    tempo.act(ALICE, "2026-03-02", "approve")
    approved = client.get_timesheet_approvals("2026-03-01", "2026-03-31", userId=ALICE)
    assert approved["status"]["key"] == "APPROVED" and approved["timeSpentSeconds"] == 3600
    assert [a["key"] for a in client.get_accounts()] == ["GLX-001"]
    assert client.get_periods("2026-02-15", "2026-03-02")["periods"] == [
        {"from": "2026-02-01", "to": "2026-02-28"}, {"from": "2026-03-01", "to": "2026-03-31"}]
    # (A wrong token is not tried through this client: its post() writes the token
    # into a class-level header dict that every later instance then sends.)
    refused = httpx.get(f"{tempo.url}/4/accounts", headers={"Authorization": "Bearer wrong"})
    assert refused.status_code == 401 and refused.headers["content-type"] == "text/html"
