"""Reconciliation three ways: approved time, the hub's charges and the live
postings read from the ERP now."""

from __future__ import annotations

from datetime import date, datetime

from billbridge.engine.hub import Hub
from billbridge.engine.reconcile import Finding, Reconciliation, erp_ledgers, reconcile_three_ways


def reconcile(hub: Hub, *, period_end: date, now: datetime, parked_days: int = 7
              ) -> Reconciliation:
    """Every difference up to ``period_end``, against each ERP the hub routes to."""
    with hub.engine.connect() as conn:
        return reconcile_three_ways(conn, period_end=period_end, now=now,
                                    ledgers=erp_ledgers(hub), parked_days=parked_days)


def ordered(result: Reconciliation) -> list[Finding]:
    """The findings in the stable order every face lists them in."""
    return sorted(result.findings, key=lambda f: (f.kind, f.project, f.record))
