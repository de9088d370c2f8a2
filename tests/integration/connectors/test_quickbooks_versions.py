"""QuickBooks answers in the shape of the minorversion asked: the emulator's
second shape (docs/connectors/quickbooks.md "API versions") gives an invoice's
Balance as a string. Read at the pinned version, the source sees no drift; at
the newer one it reports the type change on every invoice and still reports
each invoice's status and amount paid."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from billbridge.connectors.base import RateLimit
from billbridge.connectors.contracts import Drift, DriftKind
from billbridge.connectors.quickbooks.client import MINOR_VERSION, QuickBooksClient
from billbridge.connectors.quickbooks.emulator import QuickBooksEmulator
from billbridge.connectors.quickbooks.emulator.server import BALANCE_TEXT_FROM
from billbridge.connectors.quickbooks.mapping import marker
from billbridge.connectors.quickbooks.source import QuickBooksSource

FAST = RateLimit(10_000, 1, burst=10_000)
INVOICES = 3


@pytest.fixture
def qbo() -> Iterator[QuickBooksEmulator]:
    emulator = QuickBooksEmulator()
    emulator.start()
    for i in range(INVOICES):
        customer = emulator.seed("Customer", {"DisplayName": f"C-{i}"})
        emulator.seed("Invoice", {"CustomerRef": {"value": customer["Id"]}, "TotalAmt": "250.00",
                                  "Balance": "250.00", "CurrencyRef": {"value": "USD"},
                                  "PrivateNote": marker(f"inv_{i}", "e" * 32)})
    emulator.pay(emulator.records("Invoice")[0]["Id"], "100.00")
    yield emulator
    emulator.stop()


def read(qbo: QuickBooksEmulator, minor_version: int) -> tuple[list[Drift], dict[str, str]]:
    client = QuickBooksClient(qbo.url, qbo.realm_id, access_token="qbo-access-token",
                              rate_limit=FAST, batch_limit=FAST, token_url=qbo.token_url,
                              minor_version=minor_version)
    source = QuickBooksSource(client, name="qbo")
    heard: list[Drift] = []
    source.contracts.observer = heard.append
    events = [e for page in source.poll(None) for e in page.events]
    return heard, {e["data"]["invoice"]: e["data"]["amount_paid"] for e in events}


def test_the_pinned_minorversion_reads_without_drift(qbo: QuickBooksEmulator) -> None:
    heard, paid = read(qbo, MINOR_VERSION)
    assert heard == []
    assert paid == {"inv_0": "100.00", "inv_1": "0.00", "inv_2": "0.00"}


def test_the_newer_minorversion_reports_balance_as_a_type_change_and_still_maps(
        qbo: QuickBooksEmulator) -> None:
    heard, paid = read(qbo, BALANCE_TEXT_FROM)
    invoices = [d for d in heard if d.record_type == "Invoice"]
    # Every invoice read (the payment's linked one twice) and nothing else.
    assert {(f.field, f.kind, f.expected, f.seen) for d in heard for f in d.findings} == {
        ("Balance", DriftKind.TYPE_CHANGED, "number", "string")}
    assert len(invoices) == INVOICES + 1
    assert paid == {"inv_0": "100.00", "inv_1": "0.00", "inv_2": "0.00"}
