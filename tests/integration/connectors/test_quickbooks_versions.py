"""QuickBooks answers in the shape of the minorversion asked: in the
emulator's second shape (docs/connectors/quickbooks.md "API versions") an
invoice states its state in ``TxnStatus`` and a voided one keeps its private
note as written. Read at the pinned version, the source sees no drift and a
voided invoice is void; at the newer one every invoice shows the new field as
drift and the voided invoice reads as issued: what an upgrade would change."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from billbridge.connectors.base import RateLimit
from billbridge.connectors.contracts import Drift, DriftKind
from billbridge.connectors.quickbooks.client import MINOR_VERSION, QuickBooksClient
from billbridge.connectors.quickbooks.emulator import QuickBooksEmulator
from billbridge.connectors.quickbooks.emulator.server import VOID_STATUS_FROM
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
    first, _, third = (r["Id"] for r in emulator.records("Invoice"))
    emulator.pay(first, "250.00")
    emulator.void(third)
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
    return heard, {e["data"]["invoice"]: e["data"]["status"] for e in events}


def test_the_pinned_minorversion_reads_a_voided_invoice_as_void_without_drift(
        qbo: QuickBooksEmulator) -> None:
    heard, status = read(qbo, MINOR_VERSION)
    assert heard == []
    assert status == {"inv_0": "paid", "inv_1": "issued", "inv_2": "void"}


def test_the_newer_minorversion_reads_a_voided_invoice_as_issued_and_names_the_new_field(
        qbo: QuickBooksEmulator) -> None:
    heard, status = read(qbo, VOID_STATUS_FROM)
    invoices = [d for d in heard if d.record_type == "Invoice"]
    # Every invoice read (the payment's linked one twice) and nothing else.
    assert {(f.field, f.kind) for d in heard for f in d.findings} == {
        ("TxnStatus", DriftKind.UNKNOWN_FIELD)}
    assert len(invoices) == INVOICES + 1
    assert status == {"inv_0": "paid", "inv_1": "issued", "inv_2": "issued"}


def test_an_invoice_read_by_id_has_the_shape_of_the_version_asked(
        qbo: QuickBooksEmulator) -> None:
    voided = qbo.records("Invoice")[2]["Id"]
    answers = {version: httpx.get(
        f"{qbo.url}/v3/company/{qbo.realm_id}/invoice/{voided}",
        params={"minorversion": str(version)},
        headers={"Authorization": "Bearer qbo-access-token", "Accept": "application/json"},
    ).json()["Invoice"] for version in (MINOR_VERSION, VOID_STATUS_FROM)}
    assert answers[MINOR_VERSION]["PrivateNote"].startswith("Voided [billbridge inv_2 ")
    assert "TxnStatus" not in answers[MINOR_VERSION]
    assert answers[VOID_STATUS_FROM]["PrivateNote"].startswith("[billbridge inv_2 ")
    assert answers[VOID_STATUS_FROM]["TxnStatus"] == "Voided"
