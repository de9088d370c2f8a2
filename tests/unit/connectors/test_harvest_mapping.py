"""Harvest records ↔ canonical events, from Harvest's documented examples:
pure functions, no HTTP."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from billbridge.connectors.base import Malformed
from billbridge.connectors.harvest.mapping import (
    MappingConfig,
    deleted_event,
    expense_event,
    time_entry_event,
)
from billbridge.connectors.harvest.source import HarvestSource, StreamState
from billbridge.connectors.harvest.target import MARKER, merge_notes, note_lines
from billbridge.domain.events import parse_event
from harvest_documented import EXPENSES, PROJECTS, TIME_ENTRIES_PAGE

CONFIG = MappingConfig(workers={"1782959": "w-kim"}, tasks={"8083366": "dev"})
CODES = {p["id"]: p["code"] for p in PROJECTS}


def entry(index: int = 0, **changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(TIME_ENTRIES_PAGE["time_entries"][index]), **changes}


def mapped(event: dict[str, Any] | Malformed) -> dict[str, Any]:
    assert isinstance(event, dict), getattr(event, "reason", event)
    return event


def test_the_documented_time_entries_map_to_canonical_events() -> None:
    events = [mapped(time_entry_event(e, CODES, CONFIG))
              for e in TIME_ENTRIES_PAGE["time_entries"]]
    first = events[0]
    assert first["type"] == "time_entry.upserted" and first["source"] == "harvest"
    assert first["id"] == "time_entry:636709355:2017-06-27T16:47:14Z"
    assert first["at"] == "2017-06-27T16:47:14+00:00"
    assert first["data"] == {
        "id": "te_harvest_636709355", "worker": "w-kim", "project": "MW",
        "task": "Graphic Design", "work_date": "2017-03-02", "hours": "2.11",
        "billable": True, "notes": "Adding CSS styling", "status": "approved",
        "source_version": int(datetime(2017, 6, 27, 16, 47, 14, tzinfo=UTC).timestamp())}
    assert events[1]["data"]["task"] == "dev"  # Programming, mapped by task id
    assert events[1]["data"]["project"] == "OS1" and events[1]["data"]["hours"] == "1.35"
    assert events[2]["data"]["billable"] is False
    for event in events:  # the inbox's own gate accepts every one
        assert parse_event(event).record().hours > 0


def test_hours_arrive_as_json_floats_and_become_exact_decimals() -> None:
    raw = json.loads('{"hours": 0.29}')["hours"]  # 0.29 has no exact binary float
    event = mapped(time_entry_event(entry(hours=raw), CODES, CONFIG))
    assert event["data"]["hours"] == "0.29"
    assert str(parse_event(event).record().hours) == "0.29"


def test_an_entry_by_an_unknown_user_is_malformed_with_a_reason_and_the_raw_entry() -> None:
    result = time_entry_event(entry(), CODES, MappingConfig())
    assert isinstance(result, Malformed)
    assert result.reason == ("Harvest time entry 636709355: unknown Harvest user 1782959 "
                             "(Kim Allen): map it under workers in the harvest connection")
    assert result.raw["notes"] == "Adding CSS styling"
    # Not the valid event's id: once the user is mapped, that version is accepted.
    assert result.event_id == "time_entry:636709355:2017-06-27T16:47:14Z:malformed"


@pytest.mark.parametrize(("changes", "reason"), [
    ({"project": {"id": 1, "name": "Internal"}},
     "Harvest project 1 (Internal) has no code: give it its official project code in Harvest"),
    ({"hours": "lots"}, "hours is 'lots', not a number"),
    ({"hours": None}, "hours is None, not a number"),
    ({"spent_date": "yesterday"}, "work_date: Input should be a valid date"),
    ({"updated_at": None}, "updated_at is None, not a time"),
    ({"id": "x"}, "id is 'x', not an integer"),
])
def test_unmappable_entries_name_the_field(changes: dict[str, Any], reason: str) -> None:
    result = time_entry_event(entry(**changes), CODES, CONFIG)
    assert isinstance(result, Malformed) and reason in result.reason


def test_a_code_in_the_entry_itself_wins_and_is_used_without_a_lookup() -> None:
    inline = entry(project={"id": 999, "name": "New", "code": "GLX-001"})
    assert mapped(time_entry_event(inline, {}, CONFIG))["data"]["project"] == "GLX-001"


def test_an_unapproved_entry_is_submitted() -> None:
    event = mapped(time_entry_event(entry(is_closed=False, is_locked=False,
                                          updated_at="2017-06-28T09:00:00Z"), CODES, CONFIG))
    assert event["data"]["status"] == "submitted"
    assert event["data"]["source_version"] > mapped(
        time_entry_event(entry(), CODES, CONFIG))["data"]["source_version"]


def test_the_documented_expenses_map_in_their_clients_currency() -> None:
    lunch, hotel = (mapped(expense_event(e, CONFIG)) for e in EXPENSES)
    assert lunch["type"] == "expense.upserted"
    assert lunch["id"] == "expense:15296442:2017-06-27T16:47:14Z"
    assert lunch["data"] == {
        "id": "ex_harvest_15296442", "worker": "w-kim", "project": "MW",
        "date": "2017-03-03", "amount": "33.35", "currency": "USD", "category": "Meals",
        "billable": True, "status": "submitted", "source_version": lunch["data"][
            "source_version"]}
    assert (hotel["data"]["currency"], hotel["data"]["status"]) == ("EUR", "approved")
    assert hotel["data"]["amount"] == "100.0"
    assert str(parse_event(hotel).record().amount) == "100.0"


def test_an_expense_without_a_currency_needs_a_default() -> None:
    bare = {**EXPENSES[0], "client": {"id": 5735774, "name": "ABC Corp"}}
    result = expense_event(bare, CONFIG)
    assert isinstance(result, Malformed) and "default_currency" in result.reason
    config = MappingConfig(workers={"1782959": "w-kim"}, default_currency="gbp")
    assert mapped(expense_event(bare, config))["data"]["currency"] == "GBP"


def test_deletions_are_one_event_per_record() -> None:
    at = datetime(2026, 3, 5, tzinfo=UTC)
    event = deleted_event("time_entry", 636709355, "MW", at=at, config=CONFIG)
    assert event == {"type": "time_entry.deleted", "source": "harvest",
                     "id": "time_entry:636709355:deleted", "at": at.isoformat(),
                     "data": {"id": "te_harvest_636709355", "project": "MW"}}
    assert parse_event(event).record().project == "MW"
    assert deleted_event("expense", 7, None, at=at, config=CONFIG)["data"] == {
        "id": "ex_harvest_7"}


def test_maps_come_from_connection_options_as_objects_or_json_text() -> None:
    config = MappingConfig.from_options({"workers": '{"1782959": "w-kim"}',
                                         "tasks": {8083365: "design"}}, source="hv")
    assert config.workers == {"1782959": "w-kim"} and config.tasks == {"8083365": "design"}
    event = mapped(time_entry_event(entry(), CODES, config))
    assert event["source"] == "hv" and event["data"]["id"] == "te_hv_636709355"
    assert event["data"]["task"] == "design"
    with pytest.raises(ValueError, match="expected a mapping"):
        MappingConfig.from_options({"workers": "[1, 2]"})


def test_the_cursor_keeps_known_ids_grouped_by_date_and_project() -> None:
    state = StreamState(since="2026-03-01T00:00:00Z", phase="snapshot", to="2026-03-02",
                        known={5: ("2026-03-02", "MW", "2026-03-03T10:00:00Z"),
                               6: ("2026-03-02", "MW", "2026-03-03T10:00:01Z"),
                               7: ("2026-03-01", "OS1", "2026-03-03T10:00:00Z")})
    dumped = state.dump()
    assert dumped["known"] == {"2026-03-02": {"MW": {"5": "2026-03-03T10:00:00Z",
                                                     "6": "2026-03-03T10:00:01Z"}},
                               "2026-03-01": {"OS1": {"7": "2026-03-03T10:00:00Z"}}}
    assert StreamState.load(json.loads(json.dumps(dumped))) == state


def test_write_back_lines_sit_under_a_marker_and_keep_the_users_notes() -> None:
    lines = note_lines({"erp_project_id": "L-2", "erp_customer_id": "L-1",
                        "project_code": "GLX-001"})
    assert lines == {"ERP project": "L-2", "ERP customer": "L-1"}
    notes = merge_notes("Kick-off on Monday.", lines)
    assert notes == f"Kick-off on Monday.\n\n{MARKER}\nERP project: L-2\nERP customer: L-1"
    invoice = note_lines({"invoice": "inv_GLX-001_2026-03-31", "invoice_status": "paid",
                          "invoice_total": "2525.00"})
    updated = merge_notes(notes, invoice)
    assert updated.endswith("ERP customer: L-1\n"
                            "Invoice inv_GLX-001_2026-03-31: paid, total 2525.00")
    assert updated.startswith("Kick-off on Monday.")
    assert merge_notes(updated, invoice) == updated  # a repeat changes nothing
    assert merge_notes(None, {"ERP project": "L-2"}) == f"{MARKER}\nERP project: L-2"


def test_a_harvest_source_builds_from_environment_settings(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from billbridge.connectors.registry import build_source, build_target

    monkeypatch.setenv("BILLBRIDGE_TIME_TOKEN", "t0k")
    monkeypatch.setenv("BILLBRIDGE_TIME_ACCOUNT_ID", "42")
    monkeypatch.setenv("BILLBRIDGE_TIME_WORKERS", '{"1782959": "w-kim"}')
    monkeypatch.setenv("BILLBRIDGE_TIME_DELETION_WINDOW_DAYS", "10")
    monkeypatch.setenv("BILLBRIDGE_TIME_EXPENSES", "false")
    source = build_source("time=harvest+http://127.0.0.1:9/v2")
    assert isinstance(source, HarvestSource)
    assert source.name == "time" and source.config.workers == {"1782959": "w-kim"}
    assert source.deletion_window_days == 10
    assert [s.resource for s in source.streams] == ["time_entries"]
    assert build_target("time=harvest+http://127.0.0.1:9/v2").name == "time"
