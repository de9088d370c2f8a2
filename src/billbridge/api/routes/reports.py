"""Reconciliation: approved time, the hub's charges and the ERP's live
postings side by side."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BeforeValidator, Field

from billbridge.api.params import iso_date
from billbridge.api.routes.common import Cursor, Digits, Limit, Page, Reader, now, page
from billbridge.engine.hub import Hub
from billbridge.services import reconcile


class ReconcilePage(Page):
    erps: list[dict[str, Any]] = Field(
        description="each ERP read: its name, how many live labour postings it holds, or why "
                    "it could not be read")
    projects: list[dict[str, Any]] = Field(
        description="per project: approved hours, the hub's charges, the ERP's live postings")


def router(hub: Hub) -> APIRouter:
    routes = APIRouter()

    @routes.get("/v1/reconcile", response_model=ReconcilePage, tags=["reports"])
    def get_reconcile(who: Reader,
                      period_end: Annotated[date | None, BeforeValidator(iso_date)] = None,
                      parked_days: Annotated[int, Query(ge=0, le=3650), Digits] = 7,
                      cursor: Cursor = None, limit: Limit = 100) -> ReconcilePage:
        """Approved time, hub charges and the ERP's live postings (read from the
        ERP now); differences in a stable order, the cursor is the last `id` seen."""
        result = reconcile.reconcile(hub, period_end=period_end or now().date(), now=now(),
                                     parked_days=parked_days)
        items = [{"id": n, **f.as_json()} for n, f in enumerate(reconcile.ordered(result),
                                                                 start=1)
                 if cursor is None or n > cursor][:limit]
        found = page(items, limit)
        return ReconcilePage(items=found.items, next_cursor=found.next_cursor,
                             erps=[{"erp": e.name, "postings": len(e.postings),
                                    "error": e.error} for e in result.erps],
                             projects=[p.as_json() for p in result.projects])

    return routes
