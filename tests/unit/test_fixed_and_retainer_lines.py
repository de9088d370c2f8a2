"""Milestone, expense, retainer and overage lines: one unit at the amount,
the invoice's tax code on every line, overage for any hours past the
included ones (figures worked by hand)."""

from datetime import date
from decimal import Decimal

from billbridge.domain.billing import fixed_line, retainer_lines
from billbridge.domain.records import Contract

RETAINER = Contract(id="c-ret", billing_model="retainer", currency="GBP", legal_entity="GB01",
                    start=date(2026, 1, 1),
                    retainer={"amount": "5000", "included_hours": "40", "overage_rate": "150"})


def test_a_fixed_line_is_one_unit_at_its_amount_with_the_invoice_tax_code() -> None:
    line = fixed_line("Milestone 1", Decimal("2500.00"), "GB-VAT20", "ms_1")
    assert (line.quantity, line.unit_price, line.amount) == \
        (Decimal(1), Decimal("2500.00"), Decimal("2500.00"))
    assert (line.tax_code, line.source) == ("GB-VAT20", "ms_1")


def test_retainer_fee_and_overage_lines_carry_the_invoice_tax_code() -> None:
    fee, overage = retainer_lines(RETAINER, "2026-03", Decimal("42.00"), "GB-VAT20")
    assert (fee.amount, fee.tax_code) == (Decimal("5000.00"), "GB-VAT20")
    # 2 h beyond 40 at 150.00 = 300.00
    assert (overage.quantity, overage.amount, overage.tax_code) == \
        (Decimal("2.00"), Decimal("300.00"), "GB-VAT20")
    assert (fee.source, overage.source) == ("retainer:c-ret:2026-03", "overage:c-ret:2026-03")


def test_overage_of_less_than_an_hour_is_still_billed() -> None:
    # 0.5 h beyond 40 at 150.00 = 75.00
    _, overage = retainer_lines(RETAINER, "2026-03", Decimal("40.50"), "GB-VAT20")
    assert (overage.quantity, overage.amount) == (Decimal("0.50"), Decimal("75.00"))


def test_hours_exactly_at_the_included_hours_bill_the_fee_alone() -> None:
    lines = retainer_lines(RETAINER, "2026-03", Decimal("40.00"), "GB-VAT20")
    assert [line.source for line in lines] == ["retainer:c-ret:2026-03"]
