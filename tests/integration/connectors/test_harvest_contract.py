"""The Harvest emulator speaks Harvest's wire format. Harvest has no official
Python client, so these tests hold it to the documented example payloads:
loaded as published, the emulator answers with the same records, field names
and JSON types, in Harvest's envelopes, order, pagination and errors."""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from billbridge.connectors.base import PermanentError, RateLimit
from billbridge.connectors.harvest.client import HarvestClient
from billbridge.connectors.harvest.emulator import HarvestEmulator
from harvest_documented import (
    CLIENTS,
    ERROR_BODY_401,
    EXPENSES,
    ME,
    PROJECTS,
    TASKS,
    TIME_ENTRIES_PAGE,
)

TOKEN, ACCOUNT = "contract-token", "987654"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Harvest-Account-Id": ACCOUNT,
           "User-Agent": "billbridge tests (ops@example.com)"}


@pytest.fixture
def harvest() -> Iterator[HarvestEmulator]:
    with HarvestEmulator(token=TOKEN, account_id=ACCOUNT) as emulator:
        emulator.seed(users=[ME], clients=CLIENTS, projects=PROJECTS, tasks=TASKS,
                      time_entries=copy.deepcopy(TIME_ENTRIES_PAGE["time_entries"]),
                      expenses=copy.deepcopy(EXPENSES))
        yield emulator  # type: ignore[misc]


def get(emulator: HarvestEmulator, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{emulator.url}/v2/{path}", params=params, headers=HEADERS)


def json_types(value: Any) -> Any:
    """The JSON type of every field, recursively (null matches any type: the
    documented fields are nullable)."""
    if isinstance(value, dict):
        return {k: json_types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_types(v) for v in value]
    return type(value).__name__


def same_shape(documented: Any, answered: Any) -> None:
    assert set(documented) == set(answered), set(documented) ^ set(answered)
    for key, value in documented.items():
        if value is None or answered[key] is None:
            continue
        if isinstance(value, dict):
            same_shape(value, answered[key])
        else:
            assert json_types(value) == json_types(answered[key]), key


def test_time_entries_answer_as_documented(harvest: HarvestEmulator) -> None:
    answer = get(harvest, "time_entries")
    assert answer.status_code == 200
    body = answer.json()
    documented = TIME_ENTRIES_PAGE
    same_shape({k: v for k, v in documented.items() if k != "time_entries"},
               {k: v for k, v in body.items() if k != "time_entries"})
    assert body["time_entries"] == documented["time_entries"]  # fields, values, types, order
    assert isinstance(body["time_entries"][0]["hours"], float)  # a JSON number, not a string
    assert body["links"]["first"] == f"{harvest.url}/v2/time_entries?page=1&per_page=2000"
    assert (body["total_entries"], body["next_page"], body["links"]["next"]) == (4, None, None)
    one = get(harvest, "time_entries/636708723").json()
    assert one == documented["time_entries"][1]


def test_expenses_projects_clients_tasks_and_me_answer_as_documented(
        harvest: HarvestEmulator) -> None:
    assert get(harvest, "expenses").json()["expenses"] == EXPENSES
    assert get(harvest, "expenses/15296442").json() == EXPENSES[0]
    for resource, documented in (("projects", PROJECTS), ("clients", CLIENTS),
                                 ("tasks", TASKS)):
        body = get(harvest, resource).json()
        assert body[resource] == documented, resource  # newest first, as documented
        assert body["page"] == 1 and body["per_page"] == 2000
    assert get(harvest, "projects/14307913").json() == PROJECTS[1]
    assert get(harvest, "users/me").json() == ME


def test_lists_are_newest_spent_date_first_in_numbered_pages_that_shift(
        harvest: HarvestEmulator) -> None:
    for day in range(1, 6):
        harvest.log_time(user=1782959, project=14307913, task=8083365,
                         spent_date=f"2017-04-0{day}", hours=1.0)
    first = get(harvest, "time_entries", per_page=3).json()
    dates = [e["spent_date"] for e in first["time_entries"]]
    assert dates == ["2017-04-05", "2017-04-04", "2017-04-03"]
    assert (first["total_pages"], first["next_page"]) == (3, 2)
    assert first["links"]["next"] == f"{harvest.url}/v2/time_entries?page=2&per_page=3"
    second = httpx.get(first["links"]["next"], headers=HEADERS).json()
    # Deleting a record of page 1 shifts page 2, as on Harvest's numbered pages:
    # following ``page`` after a deletion skips a record. The source never does.
    harvest.delete("time_entries", first["time_entries"][0]["id"])
    shifted = httpx.get(first["links"]["next"], headers=HEADERS).json()
    assert shifted["time_entries"][0] == second["time_entries"][1]
    filtered = get(harvest, "time_entries", to="2017-04-02", **{"from": "2017-03-02"}).json()
    assert [e["spent_date"] for e in filtered["time_entries"]] == [
        "2017-04-02", "2017-04-01", "2017-03-02"]


def test_projects_page_with_a_cursor_in_links_next(harvest: HarvestEmulator) -> None:
    for i in range(5):
        harvest.seed(projects=[{"name": f"Project {i}", "code": f"P{i}", "client_id": 5735774}])
    first = get(harvest, "projects", per_page=3).json()
    assert "cursor=" in first["links"]["next"] and "ref=next_cursor" in first["links"]["next"]
    assert (first["page"], first["next_page"], first["total_pages"]) == (1, 2, 3)
    middle = httpx.get(first["links"]["next"], headers=HEADERS).json()
    assert (middle["page"], middle["next_page"], middle["previous_page"]) == (None, None, None)
    last = httpx.get(middle["links"]["next"], headers=HEADERS).json()
    assert (last["page"], last["next_page"], last["links"]["next"]) == (3, None, None)
    ids = [p["id"] for page in (first, middle, last) for p in page["projects"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 7


def test_errors_are_harvests(harvest: HarvestEmulator) -> None:
    too_big = get(harvest, "time_entries", per_page=2001)
    assert too_big.status_code == 422
    assert set(too_big.json()) == {"code", "message"} and too_big.json()["code"] == 422
    assert get(harvest, "time_entries", per_page=0).status_code == 422
    no_account = httpx.get(f"{harvest.url}/v2/users/me",
                           headers={**HEADERS, "Harvest-Account-Id": ""})
    wrong_token = httpx.get(f"{harvest.url}/v2/users/me",
                            headers={**HEADERS, "Authorization": "Bearer nope"})
    assert no_account.status_code == wrong_token.status_code == 401
    assert no_account.json() == ERROR_BODY_401
    assert get(harvest, "time_entries/1").status_code == 404
    taken = httpx.post(f"{harvest.url}/v2/projects", headers=HEADERS, json={
        "client_id": 5735774, "name": "Marketing Website", "is_billable": True,
        "bill_by": "none", "budget_by": "none"})
    assert (taken.status_code, taken.json()["message"]) == (422, "Name has already been taken")
    harvest.faults.script(["503"])
    assert get(harvest, "tasks").json() == {"code": 503, "message": "injected server error"}


def test_past_100_requests_in_15_seconds_harvest_answers_429_with_retry_after(
        harvest: HarvestEmulator) -> None:
    with httpx.Client(headers=HEADERS) as session:  # one connection: quick
        statuses = [session.get(f"{harvest.url}/v2/users/me").status_code for _ in range(101)]
        refused = session.get(f"{harvest.url}/v2/users/me")
    assert statuses[:100] == [200] * 100 and statuses[100] == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 15
    assert refused.json()["code"] == 429


def test_the_client_reads_harvests_error_bodies(harvest: HarvestEmulator) -> None:
    fast = RateLimit(1000, 1, burst=1000)
    bad = HarvestClient(f"{harvest.url}/v2", token="nope", account_id=ACCOUNT, rate_limit=fast)
    with pytest.raises(PermanentError) as raised:
        bad.page("users", {})
    assert raised.value.code == "TARGET_AUTH" and "invalid for other reasons" in str(raised.value)
    good = HarvestClient(f"{harvest.url}/v2", token=TOKEN, account_id=ACCOUNT, rate_limit=fast)
    with pytest.raises(PermanentError) as refused:
        good.page("time_entries", {"per_page": 5000})
    assert refused.value.code == "HTTP_422" and "between 1 and 2000" in str(refused.value)
    assert good.get("time_entries", 1) is None
    assert [p["code"] for p in good.all("projects", {"per_page": 1})] == ["OS1", "MW"]


def test_the_emulator_runs_from_the_cli_and_loads_fixtures_over_http() -> None:
    process = subprocess.Popen([sys.executable, "-m", "billbridge", "emulator", "run",
                                "harvest"], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split("listening on ")[1].strip()
        seeded = httpx.post(f"{url}/_emulator/seed", json={"users": [ME], "clients": CLIENTS})
        assert seeded.json()["seeded"]["clients"] == 2
        headers = {**HEADERS, "Authorization": "Bearer harvest-token",
                   "Harvest-Account-Id": "123456"}  # the emulator's defaults
        assert httpx.get(f"{url}/v2/users/me", headers=headers).json() == ME
    finally:
        process.terminate()
        process.wait(timeout=10)
