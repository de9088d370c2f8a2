"""Oracle Fusion mapping (pure) and the emulator's ``q`` reading, with hand-worked values."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from billbridge.connectors.base import Malformed
from billbridge.connectors.fields import MappingError
from billbridge.connectors.oracle_fusion import mapping
from billbridge.connectors.oracle_fusion.emulator.query import QueryError, ordered, parse_q
from billbridge.connectors.oracle_fusion.mapping import OracleSettings

CHARGE = {"id": "tc_1", "time_entry": "te_1", "project": "P-1", "worker": "w-alice",
          "work_date": "2026-03-02", "hours": "7.5", "rate": "150", "amount": "1125.00",
          "currency": "USD", "billable": True, "config_version": 1, "source_version": 1}


def test_settings_read_booleans_numbers_and_maps_from_option_text() -> None:
    settings = OracleSettings.from_options({
        "use_batch": "false", "upsert_mode": "0", "payment_terms_days": "14",
        "tax_codes": '{"GB-VAT20": "VAT20"}', "project_statuses": {"on_hold": "Suspended"}})
    assert (settings.use_batch, settings.upsert_mode, settings.payment_terms_days) == \
        (False, False, 14)
    assert settings.tax_codes == {"GB-VAT20": "VAT20"}
    assert settings.project_statuses["on_hold"] == "Suspended"
    assert settings.project_statuses["active"] == "Active"


def test_a_cost_carries_its_key_as_reference_and_names_charge_hours_and_amount() -> None:
    cost = mapping.cost(CHARGE, "ab12", OracleSettings())
    assert cost["OriginalTransactionReference"] == "ab12"
    assert cost["ExpenditureComment"] == "billbridge tc_1 7.50 h 1125.00 USD [bb:ab12]"
    assert cost["Quantity"] == Decimal("7.50") and cost["ProjectNumber"] == "P-1"


def test_a_reversal_names_its_original_and_takes_the_cost_out_of_the_live_ledger() -> None:
    original = mapping.cost(CHARGE, "ab12", OracleSettings())
    other = mapping.cost({**CHARGE, "id": "tc_2"}, "cd34", OracleSettings())
    undo = mapping.reversal(original, "tc_1", "ef56")
    assert undo["Quantity"] == Decimal("-7.50")
    assert undo["ExpenditureComment"].startswith("billbridge reversal of tc_1 (cost ab12) ")
    live = mapping.live_labour([original, other, undo, dict(other)])  # other read twice
    assert [(p.charge, p.external_id, p.amount) for p in live] == \
        [("tc_2", "cd34", Decimal("1125.00"))]


def test_an_unmapped_tax_code_is_a_mapping_error_naming_the_fix() -> None:
    payload = {"id": "inv_1", "customer": "c", "currency": "USD", "subtotal": "1", "tax": "0",
               "total": "1", "lines": [{"description": "x", "quantity": "1",
                                        "unit_price": "1", "amount": "1", "tax_code": "X"}]}
    with pytest.raises(MappingError) as caught:
        mapping.invoice(payload, "c", OracleSettings(), date(2026, 3, 31))
    assert caught.value.code == "UNMAPPED_TAX_CODE" and "tax_codes" in str(caught.value)


ROW = {"CustomerTransactionId": 7, "TransactionNumber": "inv_1", "InvoiceStatus": "Complete",
       "EnteredAmount": Decimal("100.00"), "InvoiceBalanceAmount": Decimal("100.00"),
       "LastUpdateDate": "2026-04-01T08:00:00.000000+00:00"}


@pytest.mark.parametrize(("row", "status", "paid"), [
    (ROW, "issued", "0.00"),
    ({**ROW, "InvoiceBalanceAmount": Decimal("40.00")}, "issued", "60.00"),
    ({**ROW, "InvoiceBalanceAmount": Decimal("0.00")}, "paid", "100.00")])
def test_a_complete_invoice_is_issued_until_nothing_is_owed(
        row: dict[str, object], status: str, paid: str) -> None:
    event = mapping.status_event(row, settings=OracleSettings(), source="oracle-fusion")
    assert isinstance(event, dict)
    assert (event["data"]["status"], event["data"]["amount_paid"]) == (status, paid)
    assert event["id"] == f"oracle-invoice:7:{status}:{paid}"


def test_an_incomplete_invoice_says_nothing_and_a_broken_one_is_kept_raw() -> None:
    settings = OracleSettings()
    assert mapping.status_event({**ROW, "InvoiceStatus": "Incomplete"}, settings=settings,
                                source="o") is None
    broken = mapping.status_event({**ROW, "EnteredAmount": "lots"}, settings=settings, source="o")
    assert isinstance(broken, Malformed) and "EnteredAmount" in broken.reason


def test_q_reads_and_before_or_parentheses_quotes_and_wildcards() -> None:
    rows = [{"A": "x'y", "N": 3}, {"A": "b", "N": 5}, {"A": "c", "N": None}]
    pick = parse_q("A = 'x''y' or A = 'b' and N > 4")
    assert [r["A"] for r in rows if pick(r)] == ["x'y", "b"]
    pick = parse_q("(A = 'x''y' or A = 'b') and N > 4")
    assert [r["A"] for r in rows if pick(r)] == ["b"]
    assert [r["A"] for r in rows if parse_q("N is null")(r)] == ["c"]
    assert [r["A"] for r in rows if parse_q("A LIKE 'X*'")(r)] == ["x'y"]
    # Oracle's order: a null is the largest value, last ascending and first descending.
    assert [r["N"] for r in ordered(rows, "N:asc", ("A",))] == [3, 5, None]
    assert [r["N"] for r in ordered(rows, "N:desc", ("A",))] == [None, 5, 3]
    with pytest.raises(QueryError):
        parse_q("A = ")
