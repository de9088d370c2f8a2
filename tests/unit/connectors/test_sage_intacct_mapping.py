"""Canonical commands as Sage Intacct records and Intacct's AR invoices as
canonical status events, with hand-worked figures: pure, no I/O."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from billbridge.connectors.base import Malformed
from billbridge.connectors.fields import MappingError
from billbridge.connectors.sage_intacct import gateway_url
from billbridge.connectors.sage_intacct.client import element, record_of
from billbridge.connectors.sage_intacct.mapping import (
    IntacctSettings,
    customer,
    external,
    invoice,
    live_labour,
    reversal,
    split,
    status_event,
    timesheet,
)

CHARGE = {"id": "tc_1", "time_entry": "te_1", "project": "GLX-001", "worker": "w-alice",
          "work_date": "2026-03-02", "hours": "7.5", "rate": "150", "amount": "1125.00",
          "currency": "USD", "billable": True, "config_version": 1, "source_version": 1}


def test_a_customer_goes_to_the_entity_of_its_legal_entity_else_the_default() -> None:
    settings = IntacctSettings(location_id="US01", entities={"GB01": "UK-ENT"})
    payload = {"id": "cust_1", "name": "Globex", "currency": "GBP", "billing_country": "GB"}
    assert customer({**payload, "legal_entity": "GB01"}, settings)[0] == "UK-ENT"
    location, fields = customer(payload, settings)
    assert location == "US01"
    assert (fields["CUSTOMERID"], fields["CURRENCY"],
            fields["DISPLAYCONTACT"]["MAILADDRESS"]["COUNTRYCODE"]) == ("cust_1", "GBP", "GB")


def test_an_erp_id_carries_its_entity_and_splits_back() -> None:
    assert external("GLX-001", "") == "GLX-001" and split("GLX-001") == ("GLX-001", "")
    assert external("GLX-001", "GB01") == "GLX-001@GB01"
    assert split("GLX-001@GB01") == ("GLX-001", "GB01")


def test_a_charge_is_a_timesheet_of_one_entry_that_names_it_and_carries_the_marker() -> None:
    sheet = timesheet(CHARGE, "ab12", IntacctSettings(employees={"w-alice": "E-7"}), "GLX-001")
    [entry] = sheet["TIMESHEETENTRIES"]["TIMESHEETENTRY"]
    assert (sheet["EMPLOYEEID"], sheet["BEGINDATE"]) == ("E-7", "03/02/2026")
    assert (entry["ENTRYDATE"], entry["QTY"], entry["PROJECTID"]) == \
        ("03/02/2026", "7.50", "GLX-001")
    assert entry["DESCRIPTION"] == "billbridge tc_1 7.50 h 1125.00 USD [bb:ab12]"
    node = element("TIMESHEET", sheet)
    assert node.findtext("TIMESHEETENTRIES/TIMESHEETENTRY/BILLABLE") == "true"
    assert record_of(node)["EMPLOYEEID"] == "E-7"


def test_a_reversal_turns_the_hours_and_names_the_timesheet_it_undoes() -> None:
    original = {"TIMESHEETKEY": "106", "EMPLOYEEID": "w-alice", "ENTRYDATE": "03/02/2026",
                "QTY": "7.50", "PROJECTID": "GLX-001", "BILLABLE": "true",
                "DESCRIPTION": "billbridge tc_1 7.50 h 1125.00 USD [bb:ab12]"}
    sheet = reversal(original, "tc_1", "cd34", IntacctSettings())
    [entry] = sheet["TIMESHEETENTRIES"]["TIMESHEETENTRY"]
    assert entry["QTY"] == "-7.50"
    assert entry["DESCRIPTION"] == \
        "billbridge reversal of tc_1 (timesheet 106) -7.50 h -1125.00 USD [bb:cd34]"
    live = live_labour([{**original, "QTY": "7.50"}, {**entry, "TIMESHEETKEY": "107"},
                        {**original, "TIMESHEETKEY": "108",
                         "DESCRIPTION": "billbridge tc_2 2 h 300.00 USD [bb:ef]"}],
                       {"108": "GB01"})
    assert [(p.charge, p.external_id, p.hours, p.amount) for p in live] == \
        [("tc_2", "108@GB01", Decimal("7.50"), Decimal("300.00"))]
    with pytest.raises(MappingError):
        reversal({**original, "DESCRIPTION": "typed in by hand"}, "tc_1", "x", IntacctSettings())


def test_an_invoice_is_create_invoice_numbered_by_the_canonical_id_with_tax_as_a_line() -> None:
    body = invoice({"id": "inv_GLX-001_2026-03-31", "customer": "cust_1", "project": "GLX-001",
                    "currency": "GBP", "lines": [{"description": "Alice", "quantity": "8",
                                                  "unit_price": "150", "amount": "1200.00"}],
                    "subtotal": "1200.00", "tax": "240.00", "total": "1440.00",
                    "invoice_date": "2026-03-31"}, "cust_1", IntacctSettings(), date(2026, 4, 1))
    assert body["invoiceno"] == "inv_GLX-001_2026-03-31"
    assert body["datecreated"] == {"year": "2026", "month": "03", "day": "31"}
    assert body["datedue"] == {"year": "2026", "month": "04", "day": "30"}
    assert [(i["glaccountno"], i["amount"]) for i in body["invoiceitems"]["lineitem"]] == \
        [("4000", "1200.00"), ("2200", "240.00")]


@pytest.mark.parametrize(("state", "paid", "status"), [
    ("Posted", "0", "issued"), ("Partially Paid", "100.00", "issued"),
    ("Paid", "1440.00", "paid"), ("Reversed", "0", "void")])
def test_an_ar_invoice_state_is_a_canonical_status_and_the_event_id_is_that_state(
        state: str, paid: str, status: str) -> None:
    event = status_event({"RECORDNO": "108", "RECORDID": "inv_1", "STATE": state,
                          "TOTALPAID": paid, "MEGAENTITYID": "GB01",
                          "WHENMODIFIED": "04/20/2026 12:00:05"},
                         settings=IntacctSettings(), source="sage-intacct")
    assert isinstance(event, dict)
    assert event["id"] == f"intacct-invoice:108:{status}:{paid}"
    assert event["at"] == "2026-04-20T12:00:05+00:00"
    assert event["data"] == {"invoice": "inv_1", "erp_id": "108@GB01", "status": status,
                             "amount_paid": paid}


def test_a_draft_is_no_event_and_an_unreadable_invoice_is_kept_raw() -> None:
    settings = IntacctSettings()
    assert status_event({"RECORDNO": "1", "RECORDID": "i", "STATE": "Draft"},
                        settings=settings, source="s") is None
    bad = status_event({"RECORDNO": "1", "RECORDID": "i", "STATE": "Paid", "TOTALPAID": "x",
                        "WHENMODIFIED": "04/20/2026 12:00:05"}, settings=settings, source="s")
    assert isinstance(bad, Malformed) and "TOTALPAID" in bad.reason


def test_the_gateway_path_is_added_to_a_root_url_only() -> None:
    assert gateway_url("http://127.0.0.1:9") == "http://127.0.0.1:9/ia/xml/xmlgw.phtml"
    assert gateway_url("https://api.intacct.com/ia/xml/xmlgw.phtml") == \
        "https://api.intacct.com/ia/xml/xmlgw.phtml"
