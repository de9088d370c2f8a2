"""SAP S/4HANA Cloud mapping: the hub's records as SAP's OData 2.0 entities
and SAP's billing documents as canonical invoice status. Pure."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from billbridge.connectors.base import Malformed
from billbridge.connectors.fields import MappingError
from billbridge.connectors.sap_s4hana import mapping
from billbridge.connectors.sap_s4hana.mapping import SapSettings

CHARGE = {"id": "tc_te-1", "time_entry": "te-1", "project": "GLX-001", "worker": "w-alice",
          "work_date": "2026-03-02", "hours": "8.00", "rate": "175.00", "amount": "1400.00",
          "currency": "USD", "billable": True, "config_version": 1, "source_version": 1}


def test_a_long_canonical_id_becomes_a_stable_reference_that_fits_sap_s_field() -> None:
    short = mapping.external_id("cust_hubspot_co-1")
    long = mapping.external_id("cust_salesforce_0015g00000ABCDEFGH")
    assert short == "cust_hubspot_co-1"
    assert len(long) == 20 and long == mapping.external_id("cust_salesforce_0015g00000ABCDEFGH")
    assert long != mapping.external_id("cust_salesforce_0015g00000ABCDEFGX")


def test_dates_are_odata_2_json_dates_at_utc_midnight() -> None:
    assert mapping.edm_date(date(2026, 3, 2)) == "/Date(1772409600000)/"
    parsed = mapping.parse_edm_date("/Date(1772409600000+0000)/")
    assert parsed is not None and parsed.date() == date(2026, 3, 2)
    assert mapping.parse_edm_date("2026-03-02") is None


def test_a_timesheet_record_carries_its_charge_and_marker_and_reads_back_as_a_live_posting(
        ) -> None:
    record = mapping.timesheet(CHARGE, "ab12", SapSettings(workers={"w-alice": "50001234"}))
    data = record["TimeSheetDataFields"]
    assert (record["PersonWorkAgreementExternalID"], data["WBSElement"],
            data["RecordedHours"], data["BillingControlCategory"]) == (
        "50001234", "GLX-001", "8.00", "80")
    assert data["TimeSheetNote"] == "billbridge tc_te-1 8.00 h 1400.00 USD [bb:ab12]"
    (live,) = mapping.live_labour([{**record, "TimeSheetRecord": "100000000007"}])
    assert (live.charge, live.external_id, live.hours, live.amount, live.currency) == (
        "tc_te-1", "50001234/1010/100000000007", Decimal("8.00"), Decimal("1400.00"), "USD")
    assert mapping.record_key(live.external_id) == {
        "PersonWorkAgreementExternalID": "50001234", "CompanyCode": "1010",
        "TimeSheetRecord": "100000000007"}


def test_a_project_status_sap_has_no_code_for_is_a_mapping_error_naming_the_option() -> None:
    with pytest.raises(MappingError, match="project_status"):
        mapping.project({"code": "P-1", "name": "x", "status": "on_hold"}, None,
                        SapSettings(project_status={"active": "10"}), date(2026, 3, 1), new=True)


def test_only_a_new_partner_gets_its_category_and_tax_number() -> None:
    payload = {"id": "cust_1", "name": "Globex LLC", "currency": "USD",
               "billing_country": "US", "tax_id": "US-12"}
    _ref, new = mapping.customer(payload, SapSettings(tax_number_type="US01"), new=True)
    _ref, old = mapping.customer(payload, SapSettings(tax_number_type="US01"), new=False)
    assert new["to_BusinessPartnerTax"] == {"results": [{"BPTaxType": "US01",
                                                         "BPTaxNumber": "US-12"}]}
    assert "BusinessPartnerCategory" not in old and "to_BusinessPartnerTax" not in old


def test_a_billing_document_is_issued_paid_once_cleared_and_void_once_cancelled() -> None:
    document = {"BillingDocument": "90000001", "TotalNetAmount": "2525.00",
                "LastChangeDateTime": "/Date(1775001600000+0000)/"}
    settings = SapSettings()
    issued = mapping.status_event(document, "inv_1", False, settings=settings, source="sap")
    paid = mapping.status_event(document, "inv_1", True, settings=settings, source="sap")
    void = mapping.status_event({**document, "BillingDocumentIsCancelled": True}, "inv_1",
                                True, settings=settings, source="sap")
    assert isinstance(issued, dict) and isinstance(paid, dict) and isinstance(void, dict)
    assert [e["data"]["status"] for e in (issued, paid, void)] == ["issued", "paid", "void"]
    assert paid["data"]["amount_paid"] == "2525.00" and issued["at"] == "2026-04-01T00:00:00Z"
    assert issued["id"] != paid["id"]
    broken = mapping.status_event({**document, "TotalNetAmount": "n/a"}, "inv_1", False,
                                  settings=settings, source="sap")
    assert isinstance(broken, Malformed) and "TotalNetAmount" in broken.reason


def test_settings_come_from_connection_options_given_as_text() -> None:
    settings = SapSettings.from_options({"company_code": "1710",
                                         "workers": '{"w-bob": "50009999"}', "timeout": "5"})
    assert (settings.company_code, settings.worker("w-bob"), settings.worker("w-x")) == (
        "1710", "50009999", "w-x")
