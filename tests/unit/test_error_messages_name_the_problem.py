"""What a user reads about bad input names each field that is wrong, or the
whole record when the problem is the record's, and what was missing."""

from datetime import date
from decimal import Decimal

import pytest
from pydantic import ValidationError

from billbridge.domain.billing import Rejection, price_expense
from billbridge.domain.config import load_configuration
from billbridge.domain.events import MalformedEvent, explain, parse_event
from billbridge.domain.reasons import ReasonCode
from billbridge.domain.records import Contract


def test_a_malformed_record_names_every_bad_field_one_by_one() -> None:
    raw = {"type": "time_entry.upserted", "source": "harvest", "id": "ev-1",
           "at": "2026-03-02T10:00:00Z", "data": "not a record"}
    with pytest.raises(MalformedEvent) as bad_envelope:
        parse_event(raw)
    assert str(bad_envelope.value).startswith("data: ")
    raw["data"] = {"id": "te-1", "worker": "w1", "project": "P", "work_date": "someday",
                   "hours": "eight", "status": "approved", "source_version": 1}
    raw["at"] = "not a time"
    with pytest.raises(MalformedEvent) as bad_record:
        parse_event(raw)
    problems = str(bad_record.value).split("; ")
    assert [p.split(":")[0] for p in problems] == ["at", "data.work_date", "data.hours"]


def test_a_problem_of_the_whole_record_is_named_as_the_event() -> None:
    with pytest.raises(ValidationError) as exc:
        Contract(id="c", billing_model="fixed_fee", currency="GBP", legal_entity="GB01",
                 start=date(2026, 3, 1), end=date(2026, 2, 1))
    assert explain(exc.value) == \
        "event: Value error, contract c: end 2026-02-01 is before start 2026-03-01"


def test_an_expense_with_no_fx_rate_says_which_rate_is_missing() -> None:
    rejected = price_expense(Decimal("100"), "EUR", Decimal(0), date(2026, 3, 2), "GBP",
                             load_configuration({}))
    assert rejected == Rejection(ReasonCode.NO_FX_RATE,
                                 "no EUR to GBP rate on or before 2026-03-02")
