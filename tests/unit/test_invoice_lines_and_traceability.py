"""An invoice keeps its lines, each with the invoice's tax code and the
charge it bills (lineage), and records the configuration version it was
priced under; task-level detail sums per task name."""

from datetime import date
from decimal import Decimal

from billbridge.domain.billing import build_invoice, time_lines
from billbridge.domain.config import TaxRule
from billbridge.domain.records import Customer, TimeCharge

CUSTOMER = Customer(id="cust_1", name="Globex", currency="GBP", billing_country="GB")
VAT = TaxRule(entity_country="GB", customer_country="GB", tax_code="GB-VAT20", rate="20")


def charge(entry: str, day: int, hours: str, rate: str = "150.00") -> TimeCharge:
    return TimeCharge(id=f"tc_{entry}", time_entry=entry, project="P", worker="w1",
                      work_date=date(2026, 3, day), hours=hours, rate=rate,
                      amount=(Decimal(hours) * Decimal(rate)).quantize(Decimal("0.01")),
                      currency="GBP", billable=True, config_version=1, source_version=1)


def test_each_entry_line_carries_the_invoice_tax_code_and_the_charge_it_bills() -> None:
    lines = time_lines([charge("e2", 3, "2"), charge("e1", 2, "1.5")], "entry", "GB-VAT20")
    assert [(x.source, x.tax_code, x.amount) for x in lines] == [
        ("tc_e1", "GB-VAT20", Decimal("225.00")), ("tc_e2", "GB-VAT20", Decimal("300.00"))]


def test_task_detail_sums_hours_per_task_name() -> None:
    charges = [charge("e1", 2, "1.5"), charge("e2", 3, "2"), charge("e3", 4, "1")]
    names = {"e1": "Design", "e2": "Build", "e3": "Design"}
    lines = time_lines(charges, "task", "GB-VAT20", names)
    # Design 2.5 h at 150 = 375.00; Build 2 h at 150 = 300.00
    assert sorted((x.description, x.amount, x.source) for x in lines) == [
        ("P Build: 2.00 h at 150.00", Decimal("300.00"), "tc_e2"),
        ("P Design: 2.50 h at 150.00", Decimal("375.00"), "tc_e1,tc_e3")]


def test_a_task_the_invoice_cannot_name_is_billed_as_time() -> None:
    [line] = time_lines([charge("e1", 2, "1.5")], "task", "GB-VAT20", {})
    assert line.description == "P time: 1.50 h at 150.00"


def test_worker_detail_sums_per_worker_and_summary_per_project_and_rate() -> None:
    charges = [charge("e1", 2, "1.5"), charge("e2", 3, "2"), charge("e3", 4, "1", "200.00")]
    charges[1] = charges[1].model_copy(update={"worker": "w2"})
    by_worker = time_lines(charges, "worker", "GB-VAT20")
    assert sorted((x.description, x.amount, x.tax_code) for x in by_worker) == [
        ("P w1: 1.00 h at 200.00", Decimal("200.00"), "GB-VAT20"),
        ("P w1: 1.50 h at 150.00", Decimal("225.00"), "GB-VAT20"),
        ("P w2: 2.00 h at 150.00", Decimal("300.00"), "GB-VAT20")]
    summary = time_lines(charges, "summary", "GB-VAT20")
    assert sorted((x.description, x.amount, x.source) for x in summary) == [
        ("P Professional services: 1.00 h at 200.00", Decimal("200.00"), "tc_e3"),
        ("P Professional services: 3.50 h at 150.00", Decimal("525.00"), "tc_e1,tc_e2")]


def test_an_invoice_keeps_its_lines_and_the_configuration_version_it_was_priced_under() -> None:
    lines = time_lines([charge("e1", 2, "1.5"), charge("e2", 3, "2")], "entry", "GB-VAT20")
    invoice = build_invoice("inv_1", CUSTOMER, "P", "GBP", lines, VAT, config_version=7)
    assert [x.source for x in invoice.lines] == ["tc_e1", "tc_e2"]
    # 525.00 + 20 % VAT 105.00
    assert (invoice.subtotal, invoice.tax, invoice.total) == \
        (Decimal("525.00"), Decimal("105.00"), Decimal("630.00"))
    assert invoice.config_version == 7
