"""The lineage of any record: from its source event to its ERP postings."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from billbridge.api.routes.common import Ident, Reader
from billbridge.engine.hub import Hub
from billbridge.services import lineage


def router(hub: Hub) -> APIRouter:
    routes = APIRouter()

    @routes.get("/v1/lineage/{ident}", tags=["lineage"])
    def get_lineage(ident: Ident, who: Reader) -> Any:
        with hub.engine.connect() as conn:
            return lineage.as_json(lineage.trace(conn, ident))

    return routes
