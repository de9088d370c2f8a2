"""Boundaries of the billing rules: a closed period locks its first and last
day, work on a contract's first day is inside it, and where two versions of
a rate card are in force the newest prices the entry."""

from datetime import date
from decimal import Decimal

from billbridge.domain.billing import Rejection, price_entry
from billbridge.domain.config import load_configuration
from billbridge.domain.reasons import ReasonCode
from billbridge.domain.records import Contract, Project, TimeCharge, TimeEntry

CONFIG = load_configuration({
    "legal_entities": [{"code": "GB01", "name": "Ltd", "country": "GB",
                        "functional_currency": "GBP"}],
    "workers": [{"id": "w1", "name": "W", "role": "consultant", "legal_entity": "GB01",
                 "cost_rate": "50", "currency": "GBP"}],
    "rate_cards": [
        {"id": "rc", "version": 1, "currency": "GBP", "effective_from": "2026-01-01",
         "rates": {"consultant": "100"}},
        {"id": "rc", "version": 2, "currency": "GBP", "effective_from": "2026-03-01",
         "rates": {"consultant": "120"}}],
    "closed_periods": [{"legal_entity": "GB01", "start": "2026-01-01", "end": "2026-01-31"}],
})
PROJECT = Project(code="P", name="P", status="active")
CONTRACT = Contract(id="c", billing_model="time_and_materials", currency="GBP",
                    legal_entity="GB01", start=date(2026, 1, 1), rate_card="rc")


def price(day: date, contract: Contract = CONTRACT) -> TimeCharge | Rejection:
    entry = TimeEntry(id="e", worker="w1", project="P", work_date=day, hours="2",
                      status="approved", source_version=1)
    return price_entry(entry, PROJECT, contract, CONFIG, 1)


def test_a_closed_period_locks_its_first_and_last_day_and_no_other() -> None:
    for day in (date(2026, 1, 1), date(2026, 1, 31)):
        locked = price(day)
        assert isinstance(locked, Rejection) and locked.reason is ReasonCode.PERIOD_LOCKED, day
    assert isinstance(price(date(2026, 2, 1)), TimeCharge)


def test_work_on_the_contract_s_first_day_is_inside_the_contract() -> None:
    from_feb = CONTRACT.model_copy(update={"start": date(2026, 2, 2)})
    assert isinstance(price(date(2026, 2, 2), from_feb), TimeCharge)
    before = price(date(2026, 2, 1), from_feb)
    assert isinstance(before, Rejection) and before.reason is ReasonCode.OUTSIDE_CONTRACT_PERIOD


def test_where_two_card_versions_are_in_force_the_newest_prices_the_entry() -> None:
    # Version 1 has no end, so from March both are in force: version 2's 120.00 applies.
    march = price(date(2026, 3, 2))
    assert isinstance(march, TimeCharge)
    assert (march.rate_card_version, march.amount) == (2, Decimal("240.00"))
    february = price(date(2026, 2, 2))
    assert isinstance(february, TimeCharge)
    assert (february.rate_card_version, february.amount) == (1, Decimal("200.00"))
