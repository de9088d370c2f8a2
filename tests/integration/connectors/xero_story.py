"""The story the Xero tests tell the hub: won deals with one project each,
approved time on those projects, and the month-end billing run."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from conftest import CONFIG, time_entry

PROJECTS = 5
ENTRIES = 1000
TAXED = {**CONFIG, "tax_rules": [{"entity_country": "US", "customer_country": "US",
                                  "tax_code": "US-EXEMPT", "rate": "0"}]}


def won(i: int) -> dict[str, Any]:
    return {"type": "opportunity.closed_won", "id": f"won-{i}", "at": "2026-03-01T09:00:00Z",
            "data": {"opportunity": {"id": f"d-{i}", "name": f"Deal {i}", "amount": "90000",
                                     "currency": "USD", "close_date": "2026-03-01"},
                     "customer": {"id": f"co-{i}", "name": f"Client {i} Inc",
                                  "currency": "USD", "billing_country": "US",
                                  "tax_id": f"TAX-{i}"},
                     "contract": {"id": f"ct-{i}", "billing_model": "time_and_materials",
                                  "currency": "USD", "legal_entity": "US01",
                                  "start": "2026-03-01", "rate_card": "rc-standard"},
                     "project": {"code": f"P-{i}", "name": f"Project {i}",
                                 "tasks": [{"id": "dev", "name": "Development"}]}}}


def entries(count: int = ENTRIES) -> list[dict[str, Any]]:
    return [time_entry(f"te-{n}", project=f"P-{n % PROJECTS}", hours="1.5",
                       worker=("w-alice", "w-bob")[n % 2],
                       work_date=f"2026-03-{1 + n % 28:02d}") for n in range(count)]


BILLING_RUN = {"type": "billing.run", "id": "run-2026-03", "at": "2026-04-01T06:00:00Z",
               "data": {"period_end": "2026-03-31"}}


def month_with_a_rejection(hub: Any, entry_count: int) -> None:
    """The deals won, ``entry_count`` entries posted, then te-7 rejected (the
    ERP holds its reversal): what the reconcile tests start from."""
    hub.ingest([won(i) for i in range(PROJECTS)], source="hubspot")
    hub.ingest(entries(entry_count), source="harvest")
    hub.run_until_idle()
    hub.ingest([time_entry("te-7", project="P-2", hours="1.5", version=2,
                           status="rejected")], source="harvest")
    hub.run_until_idle()


def reconcile_findings(engine: Any, hub: Any, now: datetime) -> list[tuple[str, str, Any, Any]]:
    """Reconcile to February against the hub's ERP ledgers, which must all
    answer: (kind, record, amount, currency) of each finding."""
    from billbridge.engine.reconcile import erp_ledgers, reconcile_three_ways

    with engine.connect() as conn:
        result = reconcile_three_ways(conn, period_end=date(2026, 2, 28), now=now,
                                      ledgers=erp_ledgers(hub))
    assert [e.error for e in result.erps] == [None]
    return sorted((f.kind, f.record, f.amount, f.currency) for f in result.findings)
