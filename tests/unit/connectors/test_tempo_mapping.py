"""Tempo worklogs to canonical events: hours from seconds in Decimal, the
account as the project, the issue as the task, approval from the timesheet,
event ids and versions, and what cannot be mapped."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from billbridge.connectors.base import Malformed
from billbridge.connectors.tempo.mapping import (
    MappingConfig,
    deleted_event,
    hours,
    worklog_event,
)

ALICE = "5b10a2844c20165700ede21g"
CONFIG = MappingConfig(workers={ALICE: "w-alice"}, accounts={"ACC-GLX": "GLX-001"},
                       tasks={"10001": "dev"})


def worklog(**fields: Any) -> dict[str, Any]:
    return {"tempoWorklogId": 1001, "jiraWorklogId": 20001, "issue": {"id": 10001},
            "timeSpentSeconds": 5400, "billableSeconds": 5400, "startDate": "2026-03-02",
            "description": "design review", "updatedAt": "2026-03-05T10:00:00Z",
            "author": {"accountId": ALICE},
            "attributes": {"values": [{"key": "_Account_", "value": "ACC-GLX"}]}, **fields}


def approval(key: str = "APPROVED", at: str | None = "2026-03-06T09:00:00Z") -> dict[str, Any]:
    return {"period": {"from": "2026-03-01", "to": "2026-03-31"},
            "status": {"key": key, "updatedAt": at}}


@pytest.mark.parametrize(("seconds", "expected"), [
    (3600, "1.00"), (5400, "1.50"), (1000, "0.28"), (1800, "0.50"), (18, "0.01"),
    (17, "0.00"), (86400, "24.00"), (30 * 60 + 1, "0.50")])
def test_seconds_become_hours_exactly_rounded_half_up_once(seconds: int, expected: str) -> None:
    assert hours(seconds) == Decimal(expected)


def test_an_approved_worklog_maps_its_account_issue_author_and_hours() -> None:
    event = worklog_event(worklog(), approval(), CONFIG)
    assert not isinstance(event, Malformed)
    assert event["id"] == "time_entry:20001:2026-03-05T10:00:00Z:APPROVED:2026-03-06T09:00:00Z"
    assert event["data"] == {
        "id": "te_tempo_20001", "worker": "w-alice", "project": "GLX-001", "task": "dev",
        "work_date": "2026-03-02", "hours": "1.50", "billable": True,
        "notes": "design review", "status": "approved",
        "source_version": int(datetime(2026, 3, 6, 9, tzinfo=UTC).timestamp())}


def test_billable_seconds_are_billed_and_a_worklog_with_none_is_a_cost_line() -> None:
    part = worklog_event(worklog(timeSpentSeconds=7200, billableSeconds=3600), None, CONFIG)
    none = worklog_event(worklog(billableSeconds=0), None, CONFIG)
    assert isinstance(part, dict) and isinstance(none, dict)
    assert (part["data"]["hours"], part["data"]["billable"]) == ("1.00", True)
    assert (none["data"]["hours"], none["data"]["billable"]) == ("1.50", False)


@pytest.mark.parametrize(("key", "status"), [
    ("APPROVED", "approved"), ("DONE", "approved"), ("REJECTED", "rejected"),
    ("WAITING_FOR_APPROVAL", "submitted"), ("OPEN", "submitted")])
def test_the_timesheet_status_is_the_entry_status(key: str, status: str) -> None:
    config = MappingConfig.from_options({"workers": f'{{"{ALICE}": "w-alice"}}',
                                         "approved_statuses": "approved, done"})
    event = worklog_event(worklog(), approval(key), config)
    assert isinstance(event, dict) and event["data"]["status"] == status
    assert event["data"]["project"] == "ACC-GLX"  # an unmapped account key is the code
    assert event["data"]["task"] == "10001"  # an unmapped issue is its id


@pytest.mark.parametrize(("tasks", "key", "task"), [
    ({"10001": "dev"}, "GLX-1", "dev"), ({"GLX-1": "design"}, "GLX-1", "design"),
    ({}, "GLX-1", "GLX-1"), ({}, None, "10001")])
def test_the_issue_is_the_task_by_id_then_key(tasks: dict[str, str], key: str | None,
                                             task: str) -> None:
    config = MappingConfig(workers={ALICE: "w-alice"}, tasks=tasks)
    event = worklog_event(worklog(), approval(), config, key)
    assert isinstance(event, dict) and event["data"]["task"] == task


def test_an_approval_taken_back_and_given_again_is_a_new_event_and_a_newer_version() -> None:
    first = worklog_event(worklog(), approval("APPROVED", "2026-03-06T09:00:00Z"), CONFIG)
    again = worklog_event(worklog(), approval("APPROVED", "2026-03-08T09:00:00Z"), CONFIG)
    assert isinstance(first, dict) and isinstance(again, dict)
    assert first["id"] != again["id"]
    assert again["data"]["source_version"] > first["data"]["source_version"]
    later_edit = worklog_event(worklog(updatedAt="2026-03-09T09:00:00Z"),
                               approval("APPROVED", "2026-03-08T09:00:00Z"), CONFIG)
    assert isinstance(later_edit, dict)
    assert later_edit["data"]["source_version"] > again["data"]["source_version"]


@pytest.mark.parametrize(("fields", "reason"), [
    ({"author": {"accountId": "70121:dave"}}, 'author 70121:dave is not mapped to a worker; '
                                              'add "70121:dave"'),
    ({"attributes": {"values": []}}, "has no Tempo account (_Account_)"),
    ({"jiraWorklogId": None}, "jiraWorklogId is None, not an id"),
    ({"timeSpentSeconds": -60, "billableSeconds": None}, "timeSpentSeconds is -60"),
    ({"timeSpentSeconds": 1.5, "billableSeconds": None}, "timeSpentSeconds is 1.5"),
    ({"updatedAt": "yesterday"}, "updatedAt is 'yesterday', not a time"),
    ({"startDate": "2026-02-30"}, "work_date"),
    ({"billableSeconds": 25 * 3600, "timeSpentSeconds": 25 * 3600}, "hours"),
])
def test_what_cannot_be_mapped_is_kept_raw_with_its_reason(fields: dict[str, Any],
                                                           reason: str) -> None:
    raw = worklog(**fields)
    event = worklog_event(raw, approval(), CONFIG)
    assert isinstance(event, Malformed)
    assert reason in event.reason and event.reason.startswith("Tempo worklog 1001: ")
    assert event.raw == raw and str(event.event_id).endswith(":malformed")


def test_an_unmapped_authors_hours_are_said_for_leakage_and_only_theirs() -> None:
    daves = worklog_event(worklog(author={"accountId": "70121:dave"}, billableSeconds=0),
                          approval(), CONFIG)
    assert isinstance(daves, Malformed) and daves.unmapped is not None
    person = daves.unmapped
    assert (person.connection, person.user, person.entry, person.hours, person.approved,
            person.project, person.work_date) == (
        "tempo", "70121:dave", "te_tempo_20001", "1.50", True, "GLX-001", "2026-03-02")
    no_account = worklog_event(worklog(attributes={"values": []}), approval(), CONFIG)
    assert isinstance(no_account, Malformed) and no_account.unmapped is None


def test_a_deletion_is_one_event_per_worklog_ever() -> None:
    at = datetime(2026, 3, 9, tzinfo=UTC)
    event = deleted_event(20001, "GLX-001", at=at, config=CONFIG)
    assert event == {"type": "time_entry.deleted", "source": "tempo",
                     "id": "time_entry:20001:deleted", "at": at.isoformat(),
                     "data": {"id": "te_tempo_20001", "project": "GLX-001"}}
    assert "project" not in deleted_event(20001, None, at=at, config=CONFIG)["data"]
