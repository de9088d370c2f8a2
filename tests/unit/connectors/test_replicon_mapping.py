"""Replicon's value shapes and sheets as canonical events: pure, no HTTP."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from billbridge.connectors.base import Malformed, UnmappedPerson
from billbridge.connectors.replicon.mapping import (
    APPROVED,
    REJECTED,
    WAITING,
    MappingConfig,
    duration_of,
    expense_entries,
    hours_of,
    parse_stamp,
    status_of,
    timesheet_entries,
)
from replicon_docs import DATE, DURATION, PROJECT_REFERENCE

AT = datetime(2026, 3, 9, 17, 0, 0, 250_000, tzinfo=UTC)
CONFIG = MappingConfig(workers={"alice": "w-alice"}, projects={"urn:p:9": "OPS-009"})
OWNER = {"uri": "urn:replicon-tenant:acme:user:7", "loginName": "alice",
         "displayText": "Ng, Alice", "slug": "alice"}


def sheet(*rows: dict[str, Any], owner: dict[str, Any] = OWNER) -> dict[str, Any]:
    return {"uri": "urn:replicon-tenant:acme:timesheet:3", "owner": owner, "rows": list(rows)}


def row(key: int, *cells: tuple[dict[str, int], dict[str, int]], billable: bool = True,
        project: dict[str, Any] = PROJECT_REFERENCE) -> dict[str, Any]:
    return {"uri": f"urn:replicon-tenant:acme:timesheet-row:{key}", "project": project,
            "task": {"uri": "urn:t:1", "name": "Development", "displayText": "Development"},
            "billingRate": {"uri": "urn:rate:1"} if billable else None,
            "cells": [{"date": d, "duration": h, "comments": ""} for d, h in cells]}


@pytest.mark.parametrize(("duration", "hours"), [
    (DURATION, Decimal("8.50")),
    ({"hours": 0, "minutes": 0, "seconds": 27000}, Decimal("7.50")),  # seconds only, as PUTs send
    ({"hours": 1, "minutes": 20}, Decimal("1.33")),
    ({"hours": 0, "minutes": 0, "seconds": 18, "milliseconds": 0}, Decimal("0.01")),  # half up
    ({"hours": "x"}, None),
    (None, None),
])
def test_a_duration_is_hours_to_the_hundredth(duration: Any, hours: Decimal | None) -> None:
    assert hours_of(duration) == hours


def test_hours_go_back_to_a_duration_exactly() -> None:
    assert duration_of(Decimal("7.75")) == {"hours": 7, "minutes": 45, "seconds": 0,
                                            "milliseconds": 0, "microseconds": 0}
    assert hours_of(duration_of(Decimal("7.75"))) == Decimal("7.75")


def test_stamps_read_as_text_or_as_replicons_date_time_object() -> None:
    assert parse_stamp("2026-03-09T17:00:00.250Z") == AT
    assert parse_stamp({"year": 2026, "month": 3, "day": 9, "hour": 17, "minute": 0,
                        "second": 0, "millisecond": 250}) == AT
    assert parse_stamp("yesterday") is None and parse_stamp({"year": 2026}) is None


@pytest.mark.parametrize(("uri", "status"), [(APPROVED, "approved"), (REJECTED, "rejected"),
                                              (WAITING, "submitted"), (None, "submitted")])
def test_the_sheets_approval_status_is_the_entries_status(uri: str | None, status: str) -> None:
    assert status_of({"uri": uri}) == status


def test_each_cell_with_time_is_one_entry_billable_by_its_rows_billing_rate() -> None:
    entries = timesheet_entries(sheet(
        row(4, (DATE, DURATION), ({"year": 2026, "month": 3, "day": 3}, {"hours": 0})),
        row(5, (DATE, {"hours": 2}), billable=False)),
        {"uri": APPROVED}, version=1, at=AT, config=CONFIG)
    data = [e.event["data"] for e in entries if not isinstance(e.event, Malformed)]
    assert [(d["id"], d["hours"], d["billable"], d["project"], d["task"], d["worker"])
            for d in data] == [
        ("te_replicon_4_20260302", "8.50", True, "GLX-001", "Development", "w-alice"),
        ("te_replicon_5_20260302", "2.00", False, "GLX-001", "Development", "w-alice")]
    assert entries[0].event["id"] == "time_entry:te_replicon_4_20260302:1"


def test_an_unmapped_user_is_kept_raw_with_a_reason_that_says_what_to_map() -> None:
    stranger = {"uri": "urn:u:99", "loginName": "zed", "displayText": "Zed", "slug": "zed"}
    [entry] = timesheet_entries(sheet(row(4, (DATE, DURATION)), owner=stranger),
                                {"uri": APPROVED}, version=7, at=AT, config=CONFIG)
    assert isinstance(entry.event, Malformed)
    assert "unmapped Replicon user zed (Zed): map their uri or login name under workers" \
        in entry.event.reason
    assert entry.event.raw["cell"]["duration"] == DURATION
    assert entry.event.event_id == "time_entry:te_replicon_4_20260302:7:malformed"
    assert entry.event.unmapped == UnmappedPerson(
        connection="replicon", user="zed", name="Zed", entry="te_replicon_4_20260302",
        hours="8.50", approved=True, project="GLX-001", work_date="2026-03-02")
    assert "map user zed (Zed) to a worker under workers" in entry.event.unmapped.fix


def test_an_entry_failing_for_another_reason_is_not_counted_as_an_unmapped_person() -> None:
    uncoded = row(5, (DATE, DURATION), project={"uri": "urn:p:10", "displayText": "R&D"})
    [entry] = timesheet_entries(sheet(uncoded), {"uri": APPROVED}, version=1, at=AT,
                                config=CONFIG)
    assert isinstance(entry.event, Malformed) and entry.event.unmapped is None


def test_a_project_goes_by_its_code_else_by_the_connections_map_else_is_kept_raw() -> None:
    mapped = row(4, (DATE, DURATION), project={"uri": "urn:p:9", "displayText": "Ops"})
    uncoded = row(5, (DATE, DURATION), project={"uri": "urn:p:10", "displayText": "R&D"})
    first, second = timesheet_entries(sheet(mapped, uncoded), {"uri": APPROVED}, version=1,
                                      at=AT, config=CONFIG)
    assert not isinstance(first.event, Malformed) and first.event["data"]["project"] == "OPS-009"
    assert isinstance(second.event, Malformed) and "has no code" in second.event.reason


def test_a_change_of_version_alone_leaves_the_entrys_fingerprint_alone() -> None:
    one = timesheet_entries(sheet(row(4, (DATE, DURATION))), {"uri": APPROVED}, version=1,
                            at=AT, config=CONFIG)
    two = timesheet_entries(sheet(row(4, (DATE, DURATION))), {"uri": APPROVED}, version=2,
                            at=AT, config=CONFIG)
    reopened = timesheet_entries(sheet(row(4, (DATE, DURATION))), {"uri": WAITING}, version=3,
                                 at=AT, config=CONFIG)
    assert one[0].mark == two[0].mark != reopened[0].mark


def test_an_expense_without_an_iso_currency_uses_the_default_or_is_kept_raw() -> None:
    expense = {"uri": "urn:e:1", "project": PROJECT_REFERENCE, "incurredDate": DATE,
               "expenseCode": {"displayText": "Mileage"},
               "incurredAmount": {"amount": 42.1, "currency": {"uri": "urn:c:1", "symbol": "$"}},
               "billingItemType": {"uri": "urn:replicon:expense-billing-item-type:not-billable"}}
    details = {"uri": "urn:s:1", "owner": OWNER, "approvalStatus": {"uri": APPROVED},
               "entries": [expense]}
    [kept] = expense_entries(details, version=1, at=AT, config=CONFIG)
    assert isinstance(kept.event, Malformed) and "default_currency" in kept.event.reason
    [mapped] = expense_entries(details, version=1, at=AT, config=MappingConfig(
        workers=CONFIG.workers, default_currency="usd"))
    assert not isinstance(mapped.event, Malformed)
    data = mapped.event["data"]
    assert (data["amount"], data["currency"], data["billable"], data["date"]) == (
        "42.1", "USD", False, date(2026, 3, 2).isoformat())
