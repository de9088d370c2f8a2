"""Each vendor's contract against what the vendor documents: Harvest's own
example time entries and expenses are no drift, and each departure a vendor
could make to them is exactly one finding of its kind."""

from __future__ import annotations

import copy

from billbridge.connectors.contracts import DriftKind, check
from billbridge.connectors.harvest.contract import CONTRACT as HARVEST
from billbridge.connectors.quickbooks.contract import contract as quickbooks
from harvest_documented import EXPENSES, TIME_ENTRIES_PAGE


def test_harvests_documented_records_are_no_drift() -> None:
    for entry in TIME_ENTRIES_PAGE["time_entries"]:
        assert not check(HARVEST, "time_entry", entry), entry["id"]
    for expense in EXPENSES:
        assert not check(HARVEST, "expense", expense), expense["id"]


def test_a_harvest_entry_changed_three_ways_is_three_findings() -> None:
    entry = copy.deepcopy(TIME_ENTRIES_PAGE["time_entries"][0])
    entry["hours"] = str(entry["hours"])  # a type change
    entry["approval"] = {"status": "approved"}  # a new field
    del entry["project"]  # a required one gone
    found = {(f.field, f.kind) for f in check(HARVEST, "time_entry", entry).findings}
    assert found == {("hours", DriftKind.TYPE_CHANGED), ("approval", DriftKind.UNKNOWN_FIELD),
                     ("project", DriftKind.MISSING_REQUIRED)}


def test_quickbooks_leaves_empty_fields_out_without_drift_but_not_required_ones() -> None:
    invoice = {"Id": "130", "MetaData": {"LastUpdatedTime": "2026-03-01T10:00:00-08:00"},
               "TotalAmt": 250.0, "Balance": 0}
    assert not check(quickbooks(75), "Invoice", invoice)
    del invoice["Balance"]
    [finding] = check(quickbooks(75), "Invoice", invoice).findings
    assert (finding.field, finding.kind) == ("Balance", DriftKind.MISSING_REQUIRED)
