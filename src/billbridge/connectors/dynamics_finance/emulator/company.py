"""The fake companies the Finance emulator starts with: two legal entities
(``usmf`` in USD, ``gbsi`` in GBP), their customer groups, a customer and a
project each keyed in before billbridge arrived, and the set-up the hub's
lines name (the hour category, line properties, the revenue account)."""

from __future__ import annotations

from typing import Any

DEFAULT_COMPANY = "usmf"
COMPANIES: dict[str, str] = {"usmf": "USD", "gbsi": "GBP"}
CUSTOMER_GROUPS: dict[str, tuple[str, ...]] = {"usmf": ("10", "30"), "gbsi": ("30",)}
HOUR_CATEGORIES = ("Hours", "Design")
LINE_PROPERTIES = ("Billable", "NonBill")
MAIN_ACCOUNTS = ("401100", "401200")

CUSTOMERS: list[dict[str, Any]] = [
    {"dataAreaId": "usmf", "CustomerAccount": "US-001", "OrganizationName": "Contoso Retail",
     "SalesCurrencyCode": "USD", "AddressCountryRegionId": "US", "CustomerGroupId": "10"},
    {"dataAreaId": "gbsi", "CustomerAccount": "GB-001", "OrganizationName": "Fabrikam UK",
     "SalesCurrencyCode": "GBP", "AddressCountryRegionId": "GB", "CustomerGroupId": "30"},
]
PROJECTS: list[dict[str, Any]] = [
    {"dataAreaId": "usmf", "ProjectID": "00000001", "ProjectName": "Contoso store refit",
     "CustomerAccount": "US-001", "ProjectStage": "InProcess"},
]
