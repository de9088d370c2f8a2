"""The fake enterprise the Fusion emulator starts with: a business unit, the
transaction sources, document and expenditure type billbridge's costs name,
the Receivables set-up its invoices name, a party and a project keyed in
before billbridge arrived, and the integration user."""

from __future__ import annotations

from typing import Any

USERNAME = "billbridge.integration"
BUSINESS_UNITS = ("US1 Business Unit", "Vision Operations")
COST_SOURCES: dict[str, dict[str, tuple[str, ...]]] = {
    # transaction source → document → its document entries
    "BILLBRIDGE": {"Time Cards": ("Labor",)},
}
EXPENDITURE_TYPES = ("Professional Labor", "Travel")
INVOICE_SOURCES = ("BILLBRIDGE", "Manual", "Manual-NES")
INVOICE_TYPES = ("Invoice",)
PAYMENT_TERMS = ("30 Net", "IMMEDIATE")
TAX_CLASSIFICATIONS = ("EXEMPT", "VAT20")

ORGANIZATIONS: list[dict[str, Any]] = [
    {"PartyNumber": "1008", "OrganizationName": "Vision Operations Customer",
     "SourceSystemReference": [], "Address": [{"Country": "US"}]},
]
PROJECTS: list[dict[str, Any]] = [
    {"ProjectNumber": "PJ-0001", "ProjectName": "Vision data centre move",
     "ProjectStatus": "Active", "BusinessUnitName": "US1 Business Unit"},
]
