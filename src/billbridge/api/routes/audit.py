"""The audit log, a page at a time, for the roles that may read it."""

from __future__ import annotations

from fastapi import APIRouter

from billbridge.api.routes.common import Auditor, Cursor, Limit, Page, page
from billbridge.engine.hub import Hub
from billbridge.services import audit


def router(hub: Hub) -> APIRouter:
    routes = APIRouter()

    @routes.get("/v1/audit", response_model=Page, tags=["audit"])
    def get_audit(who: Auditor, cursor: Cursor = None, limit: Limit = 100) -> Page:
        with hub.engine.connect() as conn:
            return page(audit.page(conn, cursor=cursor, limit=limit), limit)

    return routes
