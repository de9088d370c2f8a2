"""The inbox and the outbox, a page at a time."""

from __future__ import annotations

from fastapi import APIRouter

from billbridge.api.routes.common import Cursor, Filter, Limit, Page, Reader, page
from billbridge.engine.hub import Hub
from billbridge.services import queues


def router(hub: Hub) -> APIRouter:
    routes = APIRouter()

    @routes.get("/v1/inbox", response_model=Page, tags=["queues"])
    def list_inbox(who: Reader, status: Filter = None, cursor: Cursor = None,
                   limit: Limit = 100) -> Page:
        with hub.engine.connect() as conn:
            return page(queues.inbox_page(conn, status=status, cursor=cursor, limit=limit),
                        limit)

    @routes.get("/v1/outbox", response_model=Page, tags=["queues"])
    def list_outbox(who: Reader, status: Filter = None, target: Filter = None,
                    cursor: Cursor = None, limit: Limit = 100) -> Page:
        with hub.engine.connect() as conn:
            return page(queues.outbox_page(conn, status=status, target=target, cursor=cursor,
                                           limit=limit), limit)

    return routes
