from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billbridge.domain.money import Money, MoneyError, line_amount, round_money, total


def test_rounds_half_up_to_the_currency_minor_unit() -> None:
    assert Money.of("10.005", "USD").amount == Decimal("10.01")
    assert Money.of("10.004", "USD").amount == Decimal("10.00")
    assert Money.of("1234.5", "JPY").amount == Decimal("1235")
    assert Money.of("1.0005", "KWD").amount == Decimal("1.001")


def test_amount_prints_with_exactly_the_minor_unit_places() -> None:
    assert str(line_amount(Decimal("8.00"), Decimal("175.00"), "USD").amount) == "1400.00"


def test_floats_are_refused_with_a_clear_message() -> None:
    with pytest.raises(MoneyError, match="not a float"):
        Money.of(0.1, "USD")


def test_unknown_currency_is_refused() -> None:
    with pytest.raises(ValueError, match="not a supported ISO 4217"):
        Money.of("1", "XXX")


def test_combining_currencies_is_an_error() -> None:
    with pytest.raises(MoneyError, match="USD with EUR"):
        _ = Money.of("1", "USD") + Money.of("1", "EUR")


def test_total_is_the_sum_of_rounded_lines_not_a_rounded_sum() -> None:
    # Three lines of 1/3 hour at 100.00: each line rounds to 33.33; the invoice
    # total is 99.99, not a re-rounded 100.00.
    third = Decimal(1) / Decimal(3)
    lines = [line_amount(third, Decimal("100.00"), "USD") for _ in range(3)]
    assert total(lines, "USD").amount == Decimal("99.99")


@given(st.decimals(min_value=-10**9, max_value=10**9, allow_nan=False, allow_infinity=False,
                   places=6))
def test_rounding_never_moves_an_amount_by_more_than_half_a_cent(value: Decimal) -> None:
    rounded = round_money(value, "USD")
    assert abs(rounded - value) <= Decimal("0.005")
    assert rounded == rounded.quantize(Decimal("0.01"))
