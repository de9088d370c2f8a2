"""The drop files' rows, layouts, names and manifests, and the ERP's
acknowledgements read back (connectors/filedrop/mapping.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billbridge.connectors.base import Malformed
from billbridge.connectors.fields import MappingError
from billbridge.connectors.filedrop import mapping
from billbridge.connectors.filedrop.mapping import Manifest

CHARGE = {"id": "tc_te-1", "time_entry": "te-1", "project": "P-1", "task": "dev",
          "worker": "w-alice", "work_date": "2026-03-02", "hours": "8", "rate": "175.00",
          "amount": "1400.00", "currency": "USD", "billable": True, "config_version": 1,
          "source_version": 1}


def test_a_batch_is_named_by_its_keys_in_any_order() -> None:
    a = mapping.file_name("JRNL", ["k2", "k1", "k3"], "csv")
    assert a == mapping.file_name("JRNL", ["k1", "k3", "k2"], "csv")
    assert a != mapping.file_name("JRNL", ["k1", "k2"], "csv")  # regrouped: another name
    assert a.startswith("BB_JRNL_") and a.endswith(".csv")
    assert mapping.file_name("JRNL", ["k1"], "fixed").endswith(".txt")


@pytest.mark.parametrize("layout", ["csv", "fixed"])
def test_journal_lines_survive_both_layouts(layout: str) -> None:
    rows = mapping.charge_rows("key-1", CHARGE)
    reversal = mapping.reversal_rows("key-2", rows[0])
    data = mapping.render("JRNL", rows + reversal, layout)
    parsed = mapping.parse("JRNL", data, layout)
    assert parsed == rows + reversal
    assert (parsed[1]["hours"], parsed[1]["amount"], parsed[1]["reverses"]) == (
        "-8.00", "-1400.00", "key-1")


def test_the_fixed_width_layout_has_one_width_per_line_and_refuses_a_value_too_wide() -> None:
    data = mapping.render("JRNL", mapping.charge_rows("key-1", CHARGE), "fixed")
    width = sum(w for _, w in mapping.COLUMNS["JRNL"])
    assert [len(line) for line in data.decode().split("\r\n")[:-1]] == [width]
    with pytest.raises(MappingError, match="longer than the fixed-width layout's 30"):
        mapping.render("JRNL", mapping.charge_rows("k", {**CHARGE, "project": "P" * 31}),
                       "fixed")


def test_the_manifest_counts_records_lines_and_totals_and_checksums_the_file() -> None:
    invoice = {"id": "inv_P-1_2026-03-31", "customer": "cust_1", "project": "P-1",
               "currency": "USD", "subtotal": "1500.00", "tax": "0", "total": "1500.00",
               "lines": [{"description": "a", "quantity": "8", "unit_price": "150",
                          "amount": "1200.00"},
                         {"description": "b", "quantity": "2", "unit_price": "150",
                          "amount": "300.00"}]}
    rows = mapping.invoice_rows("key-inv", invoice)
    name = mapping.file_name("INV", ["key-inv"], "csv")
    data = mapping.render("INV", rows, "csv")
    manifest = Manifest.of(name, data)
    assert (manifest.records, manifest.lines, manifest.amount_total) == (1, 2,
                                                                         Decimal("1500.00"))
    assert Manifest.parse(manifest.render()) == manifest
    assert Manifest.of(name, data.replace(b"1200.00", b"1200.01")).sha256 != manifest.sha256


def test_a_charge_posted_from_two_files_is_two_live_postings_and_a_reversal_undoes_one() -> None:
    line = mapping.charge_rows("key-1", CHARGE)[0]
    twin = {**line}
    posted = {"key-1": "JV1"}
    assert len(mapping.live_labour([line, twin], posted)) == 2
    undo = mapping.reversal_rows("key-2", line)[0]
    assert mapping.live_labour([line, undo], {**posted, "key-2": "JV2"}) == []
    assert len(mapping.live_labour([line, undo], posted)) == 1  # the reversal not posted yet


def test_a_rejected_line_goes_to_the_exception_queue_and_a_bad_status_is_malformed() -> None:
    events = mapping.invoice_events([], [{"key": "k", "status": "REJECTED",
                                          "message": "customer c does not exist"}], "erp")
    assert isinstance(events[0], Malformed) and "customer c does not exist" in events[0].reason
    bad = mapping.status_event({"invoice": "inv-1", "status": "settled"}, "erp")
    assert isinstance(bad, Malformed) and "not issued, paid or void" in bad.reason
    paid = mapping.status_event({"invoice": "inv-1", "erp_id": "AR1", "status": "paid",
                                 "amount_paid": "10.00", "at": "2026-04-02T00:00:00Z"}, "erp")
    assert isinstance(paid, dict) and paid["data"]["status"] == "paid"
