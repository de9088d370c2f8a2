"""The target ids a claimed batch refers to (`dispatcher._references`): from
the xref, and for a record written more than once from the newest done write
that is not a reversal; pending, failed and reversing writes never count."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine

from billbridge.connectors.base import ERP_REFERENCES
from billbridge.connectors.generic.client import LedgerTarget
from billbridge.connectors.netsuite.target import NetSuiteTarget
from billbridge.connectors.quickbooks.target import QuickBooksTarget
from billbridge.connectors.tryton.target import TrytonTarget
from billbridge.connectors.xero.target import XeroTarget
from billbridge.engine.dispatcher import _named, _references
from billbridge.store.tables import outbox, xref

AT = datetime(2026, 3, 31, tzinfo=UTC)


def _write(n: int, kind: str, record: str, status: str, external: str | None) -> dict[str, object]:
    return {"target": "ledger", "kind": kind, "idempotency_key": f"k-{n}",
            "aggregate_key": "project:P-1", "payload": "{}", "correlation_id": f"c-{n}",
            "record_kind": "time_charge", "record_id": record, "status": status,
            "attempts": 0, "next_attempt_ms": 0, "external_id": external, "created_at": AT}


def test_references_come_from_the_xref_and_the_newest_done_write(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(xref.insert(), [
            {"system": "ledger", "kind": "project", "external_id": "PRJ-9",
             "canonical_id": "P-1", "correlation_id": "c", "created_at": AT},
            {"system": "crm", "kind": "project", "external_id": "other",
             "canonical_id": "P-2", "correlation_id": "c", "created_at": AT}])
        conn.execute(outbox.insert(), [
            _write(1, "time_charge.post", "tc-1", "done", "TB-1"),
            _write(2, "time_charge.reverse", "tc-1", "done", "REV-1"),
            _write(3, "time_charge.post", "tc-1", "done", "TB-2"),  # re-posted: the newest
            _write(4, "time_charge.post", "tc-1", "pending", None),
            _write(5, "time_charge.post", "tc-2", "failed", "TB-X"),
            _write(6, "time_charge.post", "tc-3", "done", "TB-3")])
        refs = _references(conn, "ledger", _named(Everything(), [
            Row("time_charge.reverse"), Row("time_charge.reverse"), Row("time_charge.post")], [
            {"charge": "tc-1", "project": "P-1", "amount": "150.00"},
            {"charge": "tc-2", "project": "P-2"}, {"hours": 3}]))
    assert refs == {"project:P-1": "PRJ-9", "time_charge:tc-1": "TB-2"}


@dataclass
class Row:
    kind: str


class Everything:
    """A target that does not say which fields it resolves."""


POSTING = {"id": "tc_te-1", "time_entry": "te-1", "project": "P-1", "worker": "w-1",
           "work_date": "2026-03-02", "hours": "7.50", "amount": "1125.00", "currency": "USD"}


def test_a_target_that_says_nothing_has_every_top_level_string_looked_up() -> None:
    named = _named(Everything(), [Row("time_charge.post")], [POSTING | {"billable": True}])
    assert named == sorted(v for v in POSTING.values())


def test_a_target_that_names_its_fields_has_only_those_looked_up() -> None:
    rows = [Row("time_charge.post"), Row("time_charge.reverse"), Row("invoice.create"),
            Row("something.else")]
    payloads = [POSTING, {"charge": "tc_te-0", "amount": "10.00"},
                {"id": "inv-1", "customer": "C-1", "project": None}, {"id": "x-1"}]
    for erp in (NetSuiteTarget, QuickBooksTarget, XeroTarget, TrytonTarget):
        assert erp.references is ERP_REFERENCES
        assert _named(erp, rows, payloads) == ["C-1", "P-1", "tc_te-0"]  # type: ignore[arg-type]
    # The generic ledger takes canonical ids as they are; only a reversal names,
    # by the ledger's id, the posting it cancels.
    assert _named(LedgerTarget, rows, payloads) == ["tc_te-0"]  # type: ignore[arg-type]
