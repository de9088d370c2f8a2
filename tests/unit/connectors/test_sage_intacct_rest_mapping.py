"""The gateway's records as Sage Intacct REST bodies and REST query rows as
the gateway's records, with hand-worked values: pure, no I/O."""

from __future__ import annotations

from datetime import date

import pytest
from test_sage_intacct_mapping import CHARGE

from billbridge.connectors.sage_intacct.mapping import (
    IntacctSettings,
    customer,
    invoice,
    live_labour,
    project,
    timesheet,
)
from billbridge.connectors.sage_intacct.rest import answer_of, rest_url
from billbridge.connectors.sage_intacct.rest_mapping import (
    FIELDS,
    IntacctRestSettings,
    cursor_as,
    customer_body,
    invoice_body,
    invoice_record,
    project_body,
    record_of,
    rest_of,
    rows_of,
    stamp_of,
    timesheet_body,
    timesheet_record,
)

KEY = "ab" * 16


def test_a_customer_and_a_project_as_rest_bodies() -> None:
    _location, fields = customer({"id": "cust_1", "name": "Globex", "currency": "GBP",
                                  "billing_country": "GB", "tax_id": "GB123"},
                                 IntacctSettings())
    assert customer_body(fields) == {
        "id": "cust_1", "name": "Globex", "status": "active", "currency": "GBP",
        "taxId": "GB123", "contacts": {"default": {
            "printAs": "Globex", "companyName": "Globex", "mailingAddress": {"country": "GB"}}}}
    assert project_body(project({"code": "GLX-001", "name": "Rollout", "status": "on_hold"},
                                "cust_1")) == {
        "id": "GLX-001", "name": "Rollout", "status": "active",
        "projectStatus": {"id": "On Hold"}, "customer": {"id": "cust_1"}}


def test_a_timesheet_as_a_rest_body_and_back_with_iso_dates_and_a_boolean() -> None:
    sheet = timesheet(CHARGE, KEY, IntacctSettings(timesheet_state="Submitted"), "GLX-001")
    body = timesheet_body(sheet)
    text = f"billbridge tc_1 7.50 h 1125.00 USD [bb:{KEY}]"
    assert body == {"employee": {"id": "w-alice"}, "beginDate": "2026-03-02",
                    "description": text, "state": "submitted",
                    "lines": [{"entryDate": "2026-03-02", "quantity": "7.50",
                               "project": {"id": "GLX-001"}, "isBillable": True,
                               "description": text}]}
    header, [line] = timesheet_record(body)
    assert header == {"EMPLOYEEID": "w-alice", "BEGINDATE": "03/02/2026",
                      "DESCRIPTION": text, "STATE": "Submitted"}
    assert line == {"ENTRYDATE": "03/02/2026", "QTY": "7.50", "PROJECTID": "GLX-001",
                    "BILLABLE": "true", "DESCRIPTION": text}


def test_an_invoice_as_a_posted_rest_invoice_and_back_to_create_invoice_fields() -> None:
    legacy = invoice({"id": "inv_1", "customer": "cust_1", "project": "GLX-001",
                      "currency": "USD", "invoice_date": "2026-03-31", "po_number": "PO-9",
                      "lines": [{"description": "Development", "quantity": "2",
                                 "unit_price": "150", "amount": "300.00"}],
                      "subtotal": "300.00", "tax": "30.00", "total": "330.00"},
                     "cust_1", IntacctSettings(), date(2026, 4, 1))
    body = invoice_body(legacy)
    assert {k: body[k] for k in ("invoiceNumber", "customer", "invoiceDate", "dueDate",
                                 "state", "currency", "referenceNumber")} == {
        "invoiceNumber": "inv_1", "customer": {"id": "cust_1"}, "invoiceDate": "2026-03-31",
        "dueDate": "2026-04-30", "state": "posted", "currency": {"txnCurrency": "USD"},
        "referenceNumber": "PO-9"}
    assert body["lines"] == [
        {"glAccount": {"id": "4000"}, "txnAmount": "300.00", "memo": "Development",
         "project": {"id": "GLX-001"}},
        {"glAccount": {"id": "2200"}, "txnAmount": "30.00", "memo": "tax"}]
    back = invoice_record(body)
    assert (back["invoiceno"], back["customerid"], back["currency"]) == ("inv_1", "cust_1",
                                                                         "USD")
    assert [i["amount"] for i in back["invoiceitems"]] == ["300.00", "30.00"]


def test_query_rows_flat_or_nested_read_back_as_gateway_rows_and_feed_the_ledger() -> None:
    text = f"billbridge tc_1 7.5 h 1125.00 USD [bb:{KEY}]"
    flat_row = {"key": "201", "timesheet.key": "200", "quantity": "7.5", "project.id": "GLX",
                "description": text, "entryDate": "2026-03-02", "isBillable": False}
    nested_row = {"key": "203", "timesheet": {"key": "202"}, "quantity": "1",
                  "project": {"id": "GLX"}, "description": text.replace("tc_1", "tc_2"),
                  "entity": {"id": "GB01"}}
    rows = rows_of("TIMESHEETENTRY", [flat_row, nested_row])
    assert rows[0] == {"RECORDNO": "201", "TIMESHEETKEY": "200", "QTY": "7.5",
                       "PROJECTID": "GLX", "DESCRIPTION": text, "ENTRYDATE": "03/02/2026",
                       "BILLABLE": "false"}
    assert (rows[1]["TIMESHEETKEY"], rows[1]["MEGAENTITYID"]) == ("202", "GB01")
    [one, _two] = live_labour(rows, {"202": "GB01"})
    assert (one.charge, one.external_id, str(one.amount)) == ("tc_1", "200", "1125.00")


def test_invoice_rows_their_states_and_stamps_each_way() -> None:
    stored = {"RECORDNO": "9", "RECORDID": "inv_1", "STATE": "Partially Paid",
              "TOTALPAID": "100.00", "WHENMODIFIED": "04/01/2026 12:00:05"}
    rest = rest_of(FIELDS["ARINVOICE"], stored)
    assert rest == {"key": "9", "invoiceNumber": "inv_1", "state": "partiallyPaid",
                    "totalTxnAmountPaid": "100.00", "whenModified": "2026-04-01T12:00:05Z"}
    assert record_of(FIELDS["ARINVOICE"], rest) == stored
    assert stamp_of("2026-04-01T14:00:05+02:00") == "04/01/2026 12:00:05"


def test_composite_answers_settings_and_the_api_root() -> None:
    made = answer_of({"ia::result": {"key": "77", "id": "cust_1"},
                      "ia::meta": {"totalCount": 1, "totalSuccess": 1, "totalError": 0}})
    assert (made.ok, made.key) == (True, "77")
    refused = answer_of({"ia::result": {"ia::error": {"code": "BL03000018",
                                                      "message": "Invalid employee"}},
                         "ia::meta": {"totalError": 1}})
    assert (refused.ok, refused.errors[0].errorno, refused.throttled) == \
        (False, "BL03000018", False)
    assert answer_of({"ia::meta": {"totalError": 1}}).ok is False
    assert answer_of({"ia::error": {"code": "429", "message": "slow down"}}).throttled
    assert IntacctRestSettings.from_options({"trust_idempotency_key": "yes"}) == \
        IntacctRestSettings(trust_idempotency_key=True)
    assert rest_url("") == "https://api.intacct.com/ia/api/v1"
    assert rest_url("https://api.intacct.com/ia/xml/xmlgw.phtml") == \
        "https://api.intacct.com/ia/api/v1"
    assert rest_url("http://127.0.0.1:8400/ia/api/v1/") == "http://127.0.0.1:8400/ia/api/v1"


def test_a_status_cursor_is_carried_between_the_apis() -> None:
    assert cursor_as("04/01/2026 12:00:05", "rest") == "2026-04-01T12:00:05Z"
    assert cursor_as("2026-04-01T12:00:05Z", "xml") == "04/01/2026 12:00:05"
    assert cursor_as("2026-04-01T12:00:05Z", "rest") == "2026-04-01T12:00:05Z"
    assert cursor_as("04/01/2026 12:00:05", "xml") == "04/01/2026 12:00:05"


def test_the_api_option_chooses_the_wire_for_the_target_and_the_source() -> None:
    from billbridge.connectors.base import Connection
    from billbridge.connectors.sage_intacct import CONNECTOR
    from billbridge.connectors.sage_intacct.rest_target import (
        IntacctRestInvoiceSource,
        IntacctRestTarget,
    )
    from billbridge.connectors.sage_intacct.target import IntacctTarget

    keys = {"client_id": "c", "client_secret": "s", "sender_id": "x", "user_id": "u",
            "company_id": "co"}
    rest = Connection("intacct-rest", "sage-intacct", "https://api.intacct.com",
                      credentials=keys, options={"api": "REST",
                                                 "trust_idempotency_key": "true"})
    target = CONNECTOR.target(rest)
    assert isinstance(target, IntacctRestTarget) and not target.settings.resend_lookup
    assert target.idempotency.value == "native"
    assert target.rest_client.base_url == "https://api.intacct.com/ia/api/v1"
    assert isinstance(CONNECTOR.source(rest), IntacctRestInvoiceSource)
    xml = Connection("intacct-xml", "sage-intacct", "https://api.intacct.com",
                     credentials=keys)
    assert type(CONNECTOR.target(xml)) is IntacctTarget
    wrong = Connection("intacct-soap", "sage-intacct", "", credentials=keys,
                       options={"api": "soap"})
    with pytest.raises(ValueError, match="api is xml or rest, not 'soap'"):
        CONNECTOR.target(wrong)
