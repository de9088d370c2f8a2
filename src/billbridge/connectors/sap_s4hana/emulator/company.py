"""The fake S/4HANA Cloud tenant the emulator starts with: the company code
and the configuration the hub's records name (project profile, cost
centre, profit centre, sales area, material), and one business partner and
one enterprise project keyed in before billbridge arrived."""

from __future__ import annotations

from typing import Any

COMPANY_CODES: dict[str, str] = {"1010": "USD", "1710": "USD", "2010": "GBP"}
PROJECT_PROFILES = ("YP02", "YP03")
COST_CENTERS = ("10101101", "10101201")
PROFIT_CENTERS = ("YB101", "YB102")
SALES_ORGANIZATIONS = ("1010", "1710")
DEBIT_MEMO_TYPES = ("L2",)
MATERIALS = ("SERVICE-HOURS", "SERVICE-FIXED")

BUSINESS_PARTNERS: list[dict[str, Any]] = [
    {"BusinessPartnerCategory": "2", "OrganizationBPName1": "Inlandskunde DE 1",
     "SearchTerm1": "INLANDSKUNDE", "BusinessPartnerIsBlocked": False},
]
PROJECTS: list[dict[str, Any]] = [
    {"Project": "SP-0001", "ProjectDescription": "Office move", "ProjectProfileCode": "YP02",
     "CompanyCode": "1010", "ProcessingStatus": "10", "ProjectStartDate": "/Date(1767225600000)/",
     "ResponsibleCostCenter": "10101101", "ProfitCenter": "YB101"},
]
