"""Kantata records → canonical events, from Kantata's documented example
payloads: hours to the hundredth, approval from the entry and its
submission, versions that move with approvals, and every unmappable record
a ``Malformed`` whose reason says what to fix."""

from __future__ import annotations

import bisect
import json
from decimal import Decimal
from typing import Any

import httpx
import pytest

from billbridge.connectors.base import Malformed
from billbridge.connectors.kantata.client import Page, kantata_error, per_minute
from billbridge.connectors.kantata.mapping import (
    MappingConfig,
    Workspace,
    deleted_event,
    expense_event,
    milestone_event,
    project_event,
    project_status,
    stamp_seconds,
    time_entry_event,
)
from billbridge.connectors.kantata.source import Cursor
from billbridge.connectors.kantata.webhooks import subscribed_events
from billbridge.connectors.ratelimit import TokenBucket
from billbridge.domain.events import parse_event
from billbridge.domain.records import ProjectStatus
from billbridge.engine.clock import ManualClock
from kantata_docs import (
    ERRORS,
    EXPENSE,
    RESPONSE_FORMAT,
    STORY,
    SUBSCRIBED_EVENT,
    TIME_ENTRY,
    TIMESHEET_SUBMISSION,
    WORKSPACE,
)

CONFIG = MappingConfig(workers={"7": "w-alice"},
                       custom_fields={"project_code": "501", "milestone_accepted": "601"})
GLOBEX = Workspace("77", "Globex ERP rollout", "GLX-001", 100, True, WORKSPACE)


def valid(event: Any) -> dict[str, Any]:
    """The event, after the inbox's own validation."""
    assert isinstance(event, dict), event
    return parse_event(event).model_dump(mode="json")


def test_the_documented_response_format_is_read_in_results_order() -> None:
    page = Page.parse("workspaces", RESPONSE_FORMAT, "test")
    assert [w["title"] for w in page.records] == ["some project", "another project"]
    assert page.lookup("users", "6") == {"id": "6", "full_name": "chaz"}
    assert page.count == 2 and page.page_count == 1


def test_documented_error_bodies_name_their_type_and_fields() -> None:
    assert kantata_error(httpx.Response(401, json=ERRORS["oauth"])) == (
        "KANTATA_OAUTH", "Invalid OAuth 2 Request")
    code, message = kantata_error(httpx.Response(422, json=ERRORS["validation"]))
    assert code == "KANTATA_VALIDATION"
    assert message == ("title: Please give your project a title; creator_role: Please select "
                       "a role for this project")


def test_a_documented_time_entry_becomes_an_approved_entry_in_hundredths_of_an_hour() -> None:
    event = valid(time_entry_event(TIME_ENTRY, GLOBEX, TIMESHEET_SUBMISSION, CONFIG))
    version = stamp_seconds(TIMESHEET_SUBMISSION["updated_at"])  # approval came later
    assert event["id"] == f"time_entry:4211:{version}"
    assert event["data"] == {
        "id": "kt-te-4211", "worker": "w-alice", "project": "GLX-001", "task": "900",
        "work_date": "2026-03-02", "hours": "1.58", "billable": True,
        "notes": "Data migration dry run", "status": "approved", "source_version": version}


@pytest.mark.parametrize(("minutes", "hours"), [(1, "0.02"), (20, "0.33"), (45, "0.75"),
                                                (50, "0.83"), (480, "8.00")])
def test_minutes_become_hours_rounded_half_up_to_the_hundredth(minutes: int,
                                                                 hours: str) -> None:
    entry = {**TIME_ENTRY, "time_in_minutes": minutes}
    assert valid(time_entry_event(entry, GLOBEX, None, CONFIG))["data"]["hours"] == hours


@pytest.mark.parametrize(("approved", "submission", "status"), [
    (True, "approved", "approved"), (False, "rejected", "rejected"),
    (False, "pending", "submitted"), (False, None, "submitted")])
def test_approval_comes_from_the_entry_and_rejection_from_its_submission(
        approved: bool, submission: str | None, status: str) -> None:
    sub = {**TIMESHEET_SUBMISSION, "status": submission} if submission else None
    event = time_entry_event({**TIME_ENTRY, "approved": approved}, GLOBEX, sub, CONFIG)
    assert valid(event)["data"]["status"] == status


def test_an_un_approval_is_a_newer_version_even_when_the_entry_stamp_did_not_move() -> None:
    approved = valid(time_entry_event(TIME_ENTRY, GLOBEX, TIMESHEET_SUBMISSION, CONFIG))
    cancelled_at = stamp_seconds("2026-03-09T11:00:00Z")
    undone = valid(time_entry_event({**TIME_ENTRY, "approved": False,
                                     "active_submission_id": None}, GLOBEX, None, CONFIG,
                                    changed_at=cancelled_at))
    assert undone["data"]["status"] == "submitted"
    assert undone["data"]["source_version"] > approved["data"]["source_version"]
    assert undone["id"] != approved["id"]


def test_an_entry_by_an_unknown_user_is_malformed_naming_the_user_and_the_option() -> None:
    event = time_entry_event({**TIME_ENTRY, "user_id": "99"}, GLOBEX, None, CONFIG)
    assert isinstance(event, Malformed)
    assert event.reason == ("Kantata time entry 4211: user 99 is not mapped to a worker; add "
                            "\"99\": \"<worker id>\" to the kantata connection's `workers` "
                            "option")
    assert event.raw["time_entry"]["user_id"] == "99"
    assert event.event_id and event.event_id.startswith("time_entry:4211:")


def test_an_entry_on_a_project_without_a_code_or_out_of_sight_is_malformed() -> None:
    unlinked = Workspace("77", "Globex ERP rollout", None, 100, True, WORKSPACE)
    event = time_entry_event(TIME_ENTRY, unlinked, None, CONFIG)
    assert isinstance(event, Malformed)
    assert "project (workspace) 77 'Globex ERP rollout' has no project code in custom field " \
           "501" in event.reason
    gone = time_entry_event(TIME_ENTRY, None, None, CONFIG)
    assert isinstance(gone, Malformed) and "77 is not visible" in gone.reason


def test_an_entry_the_canonical_model_refuses_is_malformed_with_every_field_named() -> None:
    event = time_entry_event({**TIME_ENTRY, "time_in_minutes": 1500,
                              "date_performed": "yesterday"}, GLOBEX, None, CONFIG)
    assert isinstance(event, Malformed)
    assert "hours:" in event.reason and "work_date:" in event.reason
    fractional = time_entry_event({**TIME_ENTRY, "time_in_minutes": 9.5}, GLOBEX, None, CONFIG)
    assert isinstance(fractional, Malformed) and "not a whole number" in fractional.reason


def test_a_documented_expense_becomes_an_amount_in_the_currency_unit() -> None:
    report = {"id": "3101", "status": "approved", "updated_at": "2026-03-05T10:00:00Z"}
    event = valid(expense_event(EXPENSE, GLOBEX, report, CONFIG))
    assert event["data"]["amount"] == "234.50" and event["data"]["currency"] == "USD"
    assert event["data"]["status"] == "approved"
    assert Decimal(event["data"]["amount"]) == Decimal("234.5")
    yen = valid(expense_event({**EXPENSE, "currency": "JPY", "currency_base_unit": 1,
                               "amount_in_cents": 23450}, GLOBEX, None, CONFIG))
    assert yen["data"]["amount"] == "23450" and yen["data"]["status"] == "submitted"
    free = Workspace("77", "Globex", "GLX-001", 100, False, WORKSPACE)
    assert valid(expense_event(EXPENSE, free, None, CONFIG))["data"]["status"] == "approved"


def test_a_documented_milestone_is_completed_then_accepted_by_its_custom_field() -> None:
    completed = valid(milestone_event(STORY, GLOBEX, {}, CONFIG))
    assert completed["data"] == {"project": "GLX-001", "milestone": {
        "id": "kt-ms-901", "contract": None, "name": "Go-live sign-off", "amount": "12500.00",
        "due": "2026-03-31", "status": "completed"}}
    accepted = valid(milestone_event(STORY, GLOBEX, {"601": "Yes"}, CONFIG))
    assert accepted["data"]["milestone"]["status"] == "accepted"
    no_budget = milestone_event({**STORY, "budget_estimate_in_cents": None}, GLOBEX, {}, CONFIG)
    assert isinstance(no_budget, Malformed)
    assert "set the milestone's budget in Kantata" in no_budget.reason


@pytest.mark.parametrize(("status", "expected"), [
    ({"color": "gray", "key": 100, "message": "Not Started"}, ProjectStatus.PENDING),
    ({"color": "light_green", "key": 200, "message": "Scheduled"}, ProjectStatus.PENDING),
    ({"color": "green", "key": 310, "message": "In Progress"}, ProjectStatus.ACTIVE),
    ({"color": "yellow", "key": 410, "message": "Waiting"}, ProjectStatus.ACTIVE),
    ({"color": "red", "key": 505, "message": "On Hold"}, ProjectStatus.ON_HOLD),
    ({"color": "blue", "key": 600, "message": "Completed"}, ProjectStatus.CLOSED)])
def test_project_status_colours_map_to_canonical_statuses(status: dict[str, Any],
                                                          expected: ProjectStatus) -> None:
    assert project_status({**WORKSPACE, "status": status}, CONFIG) is expected


def test_a_status_key_or_message_can_be_mapped_over_its_colour() -> None:
    cancelled = {**WORKSPACE, "status": {"color": "red", "key": 520, "message": "Cancelled"}}
    config = MappingConfig.from_options({"project_statuses": json.dumps({"cancelled": "closed"})})
    assert project_status(cancelled, config) is ProjectStatus.CLOSED
    assert project_status({**WORKSPACE, "archived": True}, CONFIG) is ProjectStatus.CLOSED
    odd = project_status({**WORKSPACE, "status": {"color": "purple"}}, CONFIG)
    assert isinstance(odd, str) and "project_statuses" in odd


def test_a_project_carries_its_stories_as_tasks_and_only_when_linked() -> None:
    stories = [{"id": "900", "title": "Development", "billable": True, "position": 2},
               {"id": "902", "title": "Internal QA", "billable": False, "position": 1},
               {"id": "903", "title": "Removed", "position": 0,
                "deleted_at": "2026-03-01T00:00:00Z"}]
    event = valid(project_event(GLOBEX, stories, event_id="workspace:77:1", at=1,
                                config=CONFIG))
    assert event["data"]["status"] == "active" and event["data"]["code"] == "GLX-001"
    assert [(t["id"], t["billable"]) for t in event["data"]["tasks"]] == [
        ("902", False), ("900", True)]
    unlinked = Workspace("78", "Internal", None, 100, True, WORKSPACE)
    assert project_event(unlinked, stories, event_id="x", at=1, config=CONFIG) is None


def test_a_deletion_has_one_id_whoever_found_it_and_waits_in_its_project() -> None:
    event = valid(deleted_event("time_entries", "4211", "GLX-001", 1_000, CONFIG))
    assert event["id"] == "time_entry:4211:deleted" and event["type"] == "time_entry.deleted"
    assert event["data"]["id"] == "kt-te-4211" and event["data"]["project"] == "GLX-001"
    assert valid(deleted_event("expenses", "5120", None, 1_000, CONFIG))["id"] == \
        "expense:5120:deleted"


def test_workspace_custom_values_give_the_project_code() -> None:
    record = {**WORKSPACE, "custom_field_value_ids": ["1001", "1002"]}
    objects = {"custom_field_values": {
        "1001": {"id": "1001", "custom_field_id": "501", "value": " GLX-001 "},
        "1002": {"id": "1002", "custom_field_id": "502", "value": "P-9"}}}
    assert Workspace.of(record, objects, CONFIG).code == "GLX-001"
    assert Workspace.of(WORKSPACE, {}, CONFIG).code is None


def test_options_from_the_environment_are_json() -> None:
    config = MappingConfig.from_options({"workers": '{"7": "w-alice"}',
                                         "custom_fields": '{"project_code": 501}'})
    assert config.workers == {"7": "w-alice"} and config.field_id("project_code") == "501"
    assert config.field_id("invoice_status") is None


def test_the_cursor_round_trips_and_an_instant_starts_every_stream() -> None:
    cursor = Cursor({"time_entries": 1_772_445_600}, {"time_entries": {"4211": "77"}}, 5.0)
    assert Cursor.decode(cursor.encode()) == cursor
    assert "2026-03-02T10:00:00Z" in cursor.encode()
    started = Cursor.decode("2026-03-01T00:00:00Z")
    assert set(started.since.values()) == {stamp_seconds("2026-03-01T00:00:00Z")}
    assert Cursor.decode(None) == Cursor() == Cursor.decode("[]")


def test_relay_deliveries_may_be_kantatas_answer_a_list_or_one_event() -> None:
    answer = {"count": 1, "results": [{"key": "subscribed_events", "id": "88"}],
              "subscribed_events": {"88": SUBSCRIBED_EVENT}}
    assert subscribed_events(answer) == [SUBSCRIBED_EVENT]
    assert subscribed_events([SUBSCRIBED_EVENT]) == [SUBSCRIBED_EVENT]
    assert subscribed_events(SUBSCRIBED_EVENT) == [SUBSCRIBED_EVENT]
    assert subscribed_events({"hello": "world"}) is None


@pytest.mark.parametrize("figure", [30, 100, 1000])
def test_a_per_minute_bucket_never_sends_more_than_its_figure_in_any_rolling_minute(
        figure: int) -> None:
    clock = ManualClock()
    bucket = TokenBucket(per_minute(figure), clock)
    sent = []
    for _ in range(figure * 3):
        bucket.take()  # waits on the clock when empty
        sent.append(clock.monotonic())
    most = max(bisect.bisect_left(sent, t + 60.0) - i for i, t in enumerate(sent))
    assert figure - 1 <= most <= figure
