"""Money: a Decimal amount in an ISO 4217 currency, rounded half-up to the
currency's minor unit once per line. Never a float."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Annotated, Any, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, model_validator

# Minor units of the currencies a services firm is likely to bill in. ISO 4217
# lists more; an unknown code is refused rather than guessed at two places.
MINOR_UNITS: dict[str, int] = {
    "AED": 2, "AUD": 2, "BRL": 2, "CAD": 2, "CHF": 2, "CNY": 2, "CZK": 2, "DKK": 2,
    "EUR": 2, "GBP": 2, "HKD": 2, "HUF": 2, "IDR": 2, "ILS": 2, "INR": 2, "ISK": 0,
    "JPY": 0, "KRW": 0, "KWD": 3, "BHD": 3, "MXN": 2, "MYR": 2, "NOK": 2, "NZD": 2,
    "PHP": 2, "PLN": 2, "RON": 2, "SAR": 2, "SEK": 2, "SGD": 2, "THB": 2, "TRY": 2,
    "TWD": 2, "USD": 2, "ZAR": 2, "CLP": 0, "VND": 0, "OMR": 3, "JOD": 3, "TND": 3,
}

HOURS_QUANTUM = Decimal("0.01")


class MoneyError(ValueError):
    """A money value that cannot be trusted on an invoice."""


def to_decimal(value: Any, *, what: str = "amount") -> Decimal:
    """Read a Decimal from a string, int or Decimal; floats are refused because
    they cannot represent most cent amounts exactly."""
    if isinstance(value, bool):
        raise MoneyError(f"{what} must be a decimal number, got a boolean")
    if isinstance(value, float):
        raise MoneyError(f"{what} must be given as a string or integer, not a float ({value!r})")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, (int, str)):
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation:
            raise MoneyError(f"{what} {value!r} is not a decimal number") from None
    else:
        raise MoneyError(f"{what} must be a decimal number, got {type(value).__name__}")
    if not result.is_finite():
        raise MoneyError(f"{what} {value!r} is not a finite number")
    return result


def check_currency(code: Any) -> str:
    if not isinstance(code, str) or code.upper() not in MINOR_UNITS:
        known = ", ".join(sorted(MINOR_UNITS))
        raise MoneyError(f"currency {code!r} is not a supported ISO 4217 code ({known})")
    return code.upper()


def minor_unit(currency: str) -> int:
    return MINOR_UNITS[check_currency(currency)]


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Round half-up to the currency's minor unit (2 for USD, 0 for JPY)."""
    return amount.quantize(Decimal(1).scaleb(-minor_unit(currency)), rounding=ROUND_HALF_UP)


def quantize_hours(hours: Decimal) -> Decimal:
    return hours.quantize(HOURS_QUANTUM, rounding=ROUND_HALF_UP)


DecimalStr = Annotated[
    Decimal,
    BeforeValidator(to_decimal),
    PlainSerializer(lambda d: str(d), return_type=str, when_used="json"),
]
"""A Decimal field that refuses floats and serialises to a JSON string."""

Hours = Annotated[
    Decimal,
    BeforeValidator(lambda v: quantize_hours(to_decimal(v, what="hours"))),
    PlainSerializer(lambda d: str(d), return_type=str, when_used="json"),
]
"""Hours quantised to 0.01."""

Currency = Annotated[str, BeforeValidator(check_currency)]


class Money(BaseModel):
    """An amount already rounded to its currency's minor unit."""

    model_config = ConfigDict(frozen=True)

    amount: DecimalStr
    currency: Currency

    @model_validator(mode="after")
    def _round(self) -> Self:
        # Always replace: 1400.0000 equals 1400.00 but must print as 1400.00.
        object.__setattr__(self, "amount", round_money(self.amount, self.currency))
        return self

    @classmethod
    def of(cls, amount: Any, currency: str) -> Money:
        return cls(amount=to_decimal(amount), currency=currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(amount=Decimal(0), currency=currency)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise MoneyError(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(amount=self.amount + other.amount, currency=self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(amount=self.amount - other.amount, currency=self.currency)

    def __neg__(self) -> Money:
        return Money(amount=-self.amount, currency=self.currency)

    def times(self, factor: Decimal) -> Money:
        """Multiply and round once, as one invoice line is rounded."""
        return Money(amount=self.amount * factor, currency=self.currency)

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


def line_amount(quantity: Decimal, unit_price: Decimal, currency: str) -> Money:
    """quantity × unit price, rounded once for the line. Both are Decimals
    already, so the Money is built from the rounded figure without validating
    it again (this runs once per time entry)."""
    code = check_currency(currency)
    return Money.model_construct(amount=round_money(to_decimal(quantity) * to_decimal(unit_price),
                                                    code), currency=code)


def total(lines: Iterable[Money], currency: str) -> Money:
    """The sum of already-rounded lines (never re-rounded from raw figures)."""
    result = Money.zero(currency)
    for line in lines:
        result = result + line
    return result
