"""Money is shown with its currency and summed per currency: the executive
page's totals never add USD to EUR."""

from __future__ import annotations

from decimal import Decimal

from billbridge.services.figures import Executive, ProjectFigures


def test_executive_totals_are_per_currency_never_one_sum() -> None:
    ex = Executive([ProjectFigures("GLX-001", "USD", contract_value=Decimal(50000),
                                   billed=Decimal(2525)),
                    ProjectFigures("BER-001", "EUR", contract_value=Decimal(30000),
                                   billed=Decimal(1000), wip=Decimal(500)),
                    ProjectFigures("NEW-002", "USD", contract_value=Decimal(10000),
                                   billed=Decimal(700))])
    assert ex.totals("backlog") == {"EUR": Decimal(28500), "USD": Decimal(56775)}
    assert ex.totals("billed") == {"EUR": Decimal(1000), "USD": Decimal(3225)}
    # A project's share is of the revenue in its own currency.
    assert [ex.share(p) for p in ex.projects] == [78, 100, 22]
