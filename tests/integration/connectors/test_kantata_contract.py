"""Kantata has no official Python client, so the emulator is held to the
documented example payloads (tests/kantata_docs.py): every documented field
is in its answers with the documented JSON type, its envelopes and errors are
Kantata's, it accepts the documented bulk request, and a documented record
served by it maps exactly as the documented record itself does."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest

from billbridge.connectors.base import RateLimit
from billbridge.connectors.kantata.client import KantataClient
from billbridge.connectors.kantata.emulator import KantataEmulator
from billbridge.connectors.kantata.mapping import MappingConfig, Workspace, time_entry_event
from billbridge.connectors.kantata.source import KantataSource
from kantata_docs import (
    CUSTOM_FIELD_VALUE,
    CUSTOM_FIELD_VALUES_BULK,
    ERRORS,
    EXPENSE,
    META,
    RESPONSE_FORMAT,
    STORY,
    SUBSCRIBED_EVENT,
    TIME_ENTRY,
    TIMESHEET_SUBMISSION,
    WORKSPACE,
)

TOKEN = "contract-token"
CONFIG = MappingConfig(workers={"7": "w-alice"}, custom_fields={"project_code": "501"})
JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
              dict: "object", type(None): "null"}


def same_shape(documented: Mapping[str, Any], served: Mapping[str, Any]) -> list[str]:
    """Differences: documented fields missing, or served with another JSON type."""
    problems = [f"{k} missing" for k in documented if k not in served]
    for name, value in documented.items():
        if name in served and value is not None and served[name] is not None and \
                JSON_TYPES[type(value)] != JSON_TYPES[type(served[name])]:
            problems.append(f"{name}: {JSON_TYPES[type(served[name])]}, documented "
                            f"{JSON_TYPES[type(value)]}")
    return problems


@pytest.fixture
def kantata() -> Iterator[KantataEmulator]:
    with KantataEmulator(token=TOKEN, rate_limit=10_000, limited_rate_limit=10_000) as em:
        em.seed(custom_fields=[{"id": "501", "name": "Project Code"}],
                users=[{"id": "7", "full_name": "Alice Ng"}], workspaces=[WORKSPACE],
                stories=[{**STORY, "id": "900", "story_type": "task",
                          "budget_estimate_in_cents": None}, STORY])
        em.set_custom_value("Workspace", 77, 501, "GLX-001")
        em.seed(time_entries=[{**TIME_ENTRY, "approved": False, "active_submission_id": None}],
                expenses=[EXPENSE])
        em.resolve("time_entries", em.submit("time_entries", [TIME_ENTRY["id"]]), "approved")
        yield em  # type: ignore[misc]


def get(em: KantataEmulator, path: str, **params: Any) -> Any:
    answer = httpx.get(f"{em.url}/api/v1/{path}", params=params,
                       headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.parametrize(("resource", "documented", "include"), [
    ("workspaces", WORKSPACE, "custom_field_values"),
    ("stories", STORY, ""),
    ("time_entries", TIME_ENTRY, "active_submission"),
    ("expenses", EXPENSE, "recent_submission"),
    ("timesheet_submissions", TIMESHEET_SUBMISSION, ""),
])
def test_served_records_have_every_documented_field_with_its_json_type(
        kantata: KantataEmulator, resource: str, documented: dict[str, Any],
        include: str) -> None:
    body = get(kantata, f"{resource}.json", include=include)
    served = body[resource].get(documented["id"]) or next(iter(body[resource].values()))
    assert same_shape(documented, served) == []


def test_included_objects_and_custom_field_values_keep_their_documented_shape(
        kantata: KantataEmulator) -> None:
    body = get(kantata, "time_entries", include="active_submission")
    [submission] = body["timesheet_submissions"].values()
    assert same_shape(TIMESHEET_SUBMISSION, submission) == []
    workspaces = get(kantata, "workspaces", include="custom_field_values")
    [value] = workspaces["custom_field_values"].values()
    assert same_shape(CUSTOM_FIELD_VALUE, value) == []
    assert workspaces["workspaces"]["77"]["custom_field_value_ids"] == [value["id"]]


def test_answers_have_the_documented_envelope_and_page_counters(
        kantata: KantataEmulator) -> None:
    body = get(kantata, "stories.json", per_page=1, page=2, order="position:asc")
    assert same_shape({k: RESPONSE_FORMAT[k] for k in ("count", "results")}, body) == []
    assert same_shape(RESPONSE_FORMAT["results"][0], body["results"][0]) == []
    assert set(body["meta"]) == set(META) and same_shape(META, body["meta"]) == []
    assert body["meta"] == {"count": 2, "page_count": 2, "page_number": 2, "page_size": 1}
    assert body["results"] == [{"key": "stories", "id": "901"}]
    assert list(body["stories"]) == ["901"] and body["count"] == 2


def test_errors_have_the_documented_shape(kantata: KantataEmulator) -> None:
    unauthorised = httpx.get(f"{kantata.url}/api/v1/workspaces.json")
    assert (unauthorised.status_code, unauthorised.json()) == (401, ERRORS["oauth"])
    too_big = httpx.get(f"{kantata.url}/api/v1/time_entries.json", params={"per_page": 201},
                        headers={"Authorization": f"Bearer {TOKEN}"})
    [problem] = too_big.json()["errors"]
    assert too_big.status_code == 400 and problem["type"] == "validation"
    assert problem["field"] == "per_page"
    kantata.faults.script(["429"])
    throttled = httpx.get(f"{kantata.url}/api/v1/workspaces",
                          headers={"Authorization": f"Bearer {TOKEN}"})
    assert throttled.status_code == 429
    assert [e["type"] for e in throttled.json()["errors"]] == ["system"]


def test_the_documented_bulk_custom_field_value_request_is_accepted(
        kantata: KantataEmulator) -> None:
    kantata.seed(workspaces=[{"id": "123", "title": "Hello"}],
                 custom_fields=[{"id": "456", "name": "A"}, {"id": "789", "name": "B"}])
    answer = httpx.post(f"{kantata.url}/api/v1/custom_field_values",
                        json=CUSTOM_FIELD_VALUES_BULK,
                        headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200, answer.text
    created = answer.json()["custom_field_values"]
    assert sorted(v["custom_field_id"] for v in created.values()) == ["456", "789"]
    assert all(same_shape(CUSTOM_FIELD_VALUE, v) == [] for v in created.values())
    assert kantata.custom_value("Workspace", 123, 789) == "Hello world"


def test_recorded_subscribed_events_have_the_documented_shape(
        kantata: KantataEmulator) -> None:
    kantata.delete("time_entries", TIME_ENTRY["id"])
    deleted = kantata.subscribed_events()[-1]
    assert set(deleted) == set(SUBSCRIBED_EVENT) and same_shape(SUBSCRIBED_EVENT, deleted) == []
    assert (deleted["event_type"], deleted["subject_type"]) == ("time_entry:deleted",
                                                                "TimeEntry")


def test_a_documented_record_served_by_the_emulator_maps_as_the_document_does(
        kantata: KantataEmulator) -> None:
    client = KantataClient(f"{kantata.url}/api/v1", access_token=TOKEN,
                           rate_limit=RateLimit(1000, 1, burst=1000),
                           limited_rate_limit=RateLimit(1000, 1, burst=1000))
    events = [e for page in KantataSource(client, config=CONFIG, deletion_window_days=0)
              .poll(None) for e in page.events if e["type"] == "time_entry.upserted"]
    served_submission = kantata.get("timesheet_submissions",
                                    kantata.get("time_entries", "4211")["active_submission_id"])
    globex = Workspace("77", WORKSPACE["title"], "GLX-001", 100, True, WORKSPACE)
    expected = time_entry_event({**TIME_ENTRY, "updated_at": kantata.get(
        "time_entries", "4211")["updated_at"]}, globex, served_submission, CONFIG)
    # The time entries and the timesheet submissions both lead to it: one event id.
    assert events and all(event == expected for event in events)
