"""The fake company the Dataverse emulator starts with when run by itself
(``billbridge emulator run dynamics-sales``): three currencies, two accounts,
a won opportunity for each and one still open. Tests seed their own rows."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

USD = "6b7b1d2a-0000-4000-8000-000000000840"
EUR = "6b7b1d2a-0000-4000-8000-000000000978"
GBP = "6b7b1d2a-0000-4000-8000-000000000826"

CURRENCIES: list[dict[str, Any]] = [
    {"transactioncurrencyid": USD, "isocurrencycode": "USD", "currencyname": "US Dollar"},
    {"transactioncurrencyid": EUR, "isocurrencycode": "EUR", "currencyname": "Euro"},
    {"transactioncurrencyid": GBP, "isocurrencycode": "GBP",
     "currencyname": "Pound Sterling"},
]

GLOBEX = "a11ce000-0000-4000-8000-000000000001"
INITECH = "a11ce000-0000-4000-8000-000000000002"

ACCOUNTS: list[dict[str, Any]] = [
    {"accountid": GLOBEX, "name": "Globex Corporation", "accountnumber": "GLX",
     "address1_country": "United States", "bb_taxid": "US-94-1234567",
     "_transactioncurrencyid_value": USD},
    {"accountid": INITECH, "name": "Initech GmbH", "accountnumber": "INI",
     "address1_country": "Germany", "bb_taxid": "DE811234567",
     "_transactioncurrencyid_value": EUR},
]


def won(opportunity_id: str, account_id: str, code: str, *, name: str,
        amount: Decimal | str = Decimal("120000.00"), currency: str = USD,
        billing_model: int = 100000000,
        legal_entity: str = "US01", **extra: Any) -> dict[str, Any]:
    """A won opportunity (statecode 1, statuscode 3) with billbridge's columns."""
    return {"opportunityid": opportunity_id, "name": name, "statecode": 1, "statuscode": 3,
            "actualvalue": Decimal(amount), "estimatedvalue": Decimal(amount),
            "actualclosedate": "2026-03-02",
            "_parentaccountid_value": account_id, "_customerid_value": account_id,
            "_transactioncurrencyid_value": currency, "bb_billingmodel": billing_model,
            "bb_legalentity": legal_entity, "bb_contractstart": "2026-03-01",
            "bb_contractend": "2026-12-31", "bb_ratecard": "rc-standard",
            "bb_projectcode": code, "bb_projectname": name, **extra}


OPPORTUNITIES: list[dict[str, Any]] = [
    won("0bb00000-0000-4000-8000-000000000001", GLOBEX, "GLX-001",
        name="Globex data platform"),
    won("0bb00000-0000-4000-8000-000000000002", INITECH, "INI-001",
        name="Initech billing revamp", currency=EUR, legal_entity="US01"),
    {"opportunityid": "0bb00000-0000-4000-8000-000000000003", "name": "Globex phase two",
     "statecode": 0, "statuscode": 1, "estimatedvalue": "80000.00",
     "_parentaccountid_value": GLOBEX, "_transactioncurrencyid_value": USD},
]
