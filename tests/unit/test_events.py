from typing import Any

import pytest

from billbridge.domain.events import (
    PAYLOADS,
    CanonicalEvent,
    MalformedEvent,
    aggregate_key,
    parse_event,
)
from billbridge.domain.idempotency import canonical_json, idempotency_key, key_of_json


def _event(**data: object) -> dict[str, object]:
    base = {"id": "te-1", "worker": "w-alice", "project": "GLX-001", "work_date": "2026-03-02",
            "hours": "8", "status": "approved", "source_version": 1}
    return {"type": "time_entry.upserted", "source": "harvest", "id": "e1",
            "at": "2026-03-03T18:00:00Z", "data": {**base, **data}}


RAW: dict[str, Any] = _event(hours="7.5", task="dev", notes="design review")


def test_parse_normalises_hours_to_two_places() -> None:
    assert parse_event(_event(hours="7.5")).data["hours"] == "7.50"


def test_parse_names_the_bad_field_and_event() -> None:
    with pytest.raises(MalformedEvent, match=r"time_entry.upserted e1: hours"):
        parse_event(_event(hours="lots"))


def test_unknown_event_type_is_malformed() -> None:
    with pytest.raises(MalformedEvent, match=r"unknown event type 'deal\.won'"):
        parse_event({**_event(), "type": "deal.won"})


def test_event_time_must_carry_a_time_zone() -> None:
    with pytest.raises(MalformedEvent, match="at"):
        parse_event({**_event(), "at": "2026-03-03T18:00:00"})


def test_non_utc_times_are_stored_as_utc() -> None:
    event = parse_event({**_event(), "at": "2026-03-03T20:00:00+02:00"})
    assert event.at.isoformat() == "2026-03-03T18:00:00+00:00"


def test_unknown_record_fields_are_refused() -> None:
    with pytest.raises(MalformedEvent, match="colour: Extra inputs are not permitted"):
        parse_event(_event(colour="blue"))


def test_time_and_activation_share_the_project_aggregate() -> None:
    assert aggregate_key(parse_event(_event())) == "project:GLX-001"


def test_idempotency_key_depends_on_content_and_origin_only() -> None:
    key = idempotency_key("ledger", "time_charge.post", "te-1:v1", {"amount": "1400.00"})
    assert key == idempotency_key("ledger", "time_charge.post", "te-1:v1", {"amount": "1400.00"})
    assert key != idempotency_key("ledger", "time_charge.post", "te-1:v2", {"amount": "1400.00"})
    assert key != idempotency_key("ledger", "time_charge.post", "te-1:v1", {"amount": "1500.00"})
    assert len(key) == 32


def test_idempotency_keys_never_change_between_releases() -> None:
    # A replay after an upgrade must find the command it made before the upgrade:
    # this key was computed by the first release's function.
    content = {"amount": "1400.00", "worker": "Zoë Ø", "lines": [{"b": 1, "a": None}],
               "billable": True}
    key = idempotency_key("ledger", "time_charge.post", "time_entry:te-1:v1", content)
    assert key == "62def863dd2c3e63735d6db1adb0754a"
    assert key_of_json("ledger", "time_charge.post", "time_entry:te-1:v1",
                       canonical_json(content)) == key


def test_a_parsed_event_reads_back_from_its_json_as_it_was() -> None:
    event = parse_event(RAW)
    stored = CanonicalEvent.model_validate_json(event.model_dump_json())
    assert stored == event and stored.model_dump_json() == event.model_dump_json()
    assert stored.record() == event.record() == PAYLOADS[event.type].model_validate(event.data)


def test_parse_event_normalises_as_validating_twice_did() -> None:
    raw = {**RAW, "at": "2026-03-03T19:00:00+01:00",
           "data": {**RAW["data"], "hours": 7, "notes": "  spaced  "}}
    event = CanonicalEvent.model_validate(raw)
    record = PAYLOADS[event.type].model_validate(event.data)
    assert parse_event(raw) == event.model_copy(update={"data": record.model_dump(mode="json")})
