"""The billing rules as pure functions, with figures worked by hand."""

from datetime import date
from decimal import Decimal

from billbridge.domain.billing import (
    Rejection,
    fx_rate,
    price_entry,
    price_expense,
    retainer_lines,
    tax_rule_for,
    time_lines,
)
from billbridge.domain.config import load_configuration
from billbridge.domain.reasons import ReasonCode
from billbridge.domain.records import Contract, Customer, Project, TimeCharge, TimeEntry

CONFIG = load_configuration({
    "legal_entities": [{"code": "GB01", "name": "Ltd", "country": "GB",
                        "functional_currency": "GBP"}],
    "workers": [{"id": "w1", "name": "W", "role": "consultant", "legal_entity": "GB01",
                 "cost_rate": "50", "currency": "GBP"}],
    "rate_cards": [{"id": "rc", "version": 1, "currency": "GBP", "effective_from": "2026-01-01",
                    "rates": {"consultant": "133.33"}}],
    "tax_rules": [
        {"entity_country": "GB", "customer_country": "DE", "tax_code": "GB-EU", "rate": "19"},
        {"entity_country": "GB", "customer_country": "DE", "customer_has_tax_id": True,
         "tax_code": "GB-RC", "rate": "0"}],
    "fx_rates": [{"date": "2026-03-01", "from": "EUR", "to": "GBP", "rate": "0.8500"},
                 {"date": "2026-03-10", "from": "EUR", "to": "GBP", "rate": "0.8600"}],
    "closed_periods": [{"legal_entity": "GB01", "start": "2026-01-01", "end": "2026-01-31"}],
})
PROJECT = Project(code="P", name="P", status="active", tasks=[{"id": "dev", "name": "Dev"}])
CONTRACT = Contract(id="c", billing_model="time_and_materials", currency="GBP",
                    legal_entity="GB01", start=date(2026, 1, 1), rate_card="rc",
                    budget_cap=Decimal("1000"))


def entry(hours: str, day: date = date(2026, 3, 2), task: str = "dev") -> TimeEntry:
    return TimeEntry(id="e", worker="w1", project="P", task=task, work_date=day, hours=hours,
                     status="approved", source_version=1)


def charge(i: int, hours: str) -> TimeCharge:
    return TimeCharge(id=f"c{i}", time_entry=f"e{i}", project="P", worker="w1",
                      work_date=date(2026, 3, i), hours=hours, rate="133.33",
                      amount=(Decimal(hours) * Decimal("133.33")).quantize(Decimal("0.01")),
                      currency="GBP", billable=True, config_version=1, source_version=1)


def test_summed_line_is_rounded_once_not_the_sum_of_rounded_entries() -> None:
    # Three entries of 0.35 h at 133.33: each 46.6655 → 46.67, together 140.01.
    # One summary line: 1.05 h x 133.33 = 139.9965 → 140.00.
    charges = [charge(i, "0.35") for i in (1, 2, 3)]
    assert sum(c.amount for c in charges) == Decimal("140.01")
    [line] = time_lines(charges, "summary", "T")
    assert (line.quantity, line.amount) == (Decimal("1.05"), Decimal("140.00"))
    assert [x.amount for x in time_lines(charges, "entry", "T")] == [Decimal("46.67")] * 3


def test_checks_run_in_domain_order() -> None:
    # January is both closed and fine for the contract: PERIOD_LOCKED (last check).
    locked = price_entry(entry("1", date(2026, 1, 15)), PROJECT, CONTRACT, CONFIG, 1)
    assert isinstance(locked, Rejection) and locked.reason is ReasonCode.PERIOD_LOCKED
    # Over the cap and in a closed period: BUDGET_EXCEEDED comes first.
    both = price_entry(entry("8", date(2026, 1, 15)), PROJECT, CONTRACT, CONFIG, 1)
    assert isinstance(both, Rejection) and both.reason is ReasonCode.BUDGET_EXCEEDED
    unknown_task = price_entry(entry("8", task="qa"), PROJECT, CONTRACT, CONFIG, 1)
    assert isinstance(unknown_task, Rejection) and unknown_task.reason is ReasonCode.TASK_UNKNOWN


def test_budget_counts_what_is_already_committed() -> None:
    fits = price_entry(entry("7"), PROJECT, CONTRACT, CONFIG, 1)  # 933.31
    assert isinstance(fits, TimeCharge) and fits.amount == Decimal("933.31")
    held = price_entry(entry("1"), PROJECT, CONTRACT, CONFIG, 1, committed=Decimal("933.31"))
    assert isinstance(held, Rejection) and "1066.64" in held.message


def test_tax_rule_naming_the_tax_id_condition_wins() -> None:
    business = Customer(id="c", name="B", currency="EUR", billing_country="DE", tax_id="DE1")
    consumer = Customer(id="c", name="C", currency="EUR", billing_country="DE")
    assert tax_rule_for(CONFIG, "GB", business).tax_code == "GB-RC"  # type: ignore[union-attr]
    assert tax_rule_for(CONFIG, "GB", consumer).tax_code == "GB-EU"  # type: ignore[union-attr]


def test_fx_uses_the_latest_rate_on_or_before_the_date() -> None:
    assert fx_rate(CONFIG, date(2026, 3, 9), "EUR", "GBP") == Decimal("0.8500")
    assert fx_rate(CONFIG, date(2026, 3, 10), "EUR", "GBP") == Decimal("0.8600")
    assert fx_rate(CONFIG, date(2026, 2, 28), "EUR", "GBP") is None
    # 100.00 EUR + 10 % = 110.00 EUR x 0.86 = 94.60 GBP
    assert price_expense(Decimal("100.00"), "EUR", Decimal("10"), date(2026, 3, 12), "GBP",
                         CONFIG) == Decimal("94.60")


def test_retainer_bills_fee_and_overage_past_included_hours() -> None:
    contract = Contract(id="r", billing_model="retainer", currency="GBP", legal_entity="GB01",
                        start=date(2026, 1, 1),
                        retainer={"amount": "3000", "included_hours": "10",
                                  "overage_rate": "150"})
    fee, overage = retainer_lines(contract, "2026-03", Decimal("12.5"), "T")
    assert fee.amount == Decimal("3000.00")
    assert (overage.quantity, overage.amount) == (Decimal("2.5"), Decimal("375.00"))
    assert len(retainer_lines(contract, "2026-03", Decimal("10"), "T")) == 1
