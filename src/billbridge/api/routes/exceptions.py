"""The exception queue: list and read exceptions, and retry, replay or
dismiss one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from billbridge.api.params import PRINTABLE
from billbridge.api.routes.common import (
    Actor,
    Cursor,
    Limit,
    Page,
    Reader,
    RowId,
    now,
    page,
)
from billbridge.domain.reasons import ReasonCode
from billbridge.engine.hub import Hub
from billbridge.engine.tokens import Identity
from billbridge.services import exceptions
from billbridge.services.exceptions import Action


class DismissBody(BaseModel):
    """Why the exception is dismissed, in words (``reason`` is a reason code
    everywhere else in the API, so the free text is ``note``, as in the CLI)."""

    model_config = ConfigDict(strict=True, extra="forbid")
    note: str = Field(min_length=1, max_length=2000)


ReasonFilter = Annotated[str | None, Query(
    min_length=1, max_length=64, description="a reason code", json_schema_extra={
        "enum": [code.value for code in ReasonCode]})]
"""Checked by the use case (which names the nearest code); the schema lists them."""


def router(hub: Hub) -> APIRouter:
    routes = APIRouter()

    @routes.get("/v1/exceptions", response_model=Page, tags=["exceptions"])
    def list_exceptions(who: Reader, reason: ReasonFilter = None,
                        status: Annotated[str, Query(max_length=200, pattern=PRINTABLE)] = "open",
                        cursor: Cursor = None, limit: Limit = 100) -> Page:
        with hub.engine.connect() as conn:
            return page(exceptions.page(conn, status=status, reason=reason, cursor=cursor,
                                        limit=limit), limit)

    @routes.get("/v1/exceptions/{exc_id}", tags=["exceptions"])
    def get_exception(exc_id: RowId, who: Reader) -> dict[str, Any]:
        with hub.engine.connect() as conn:
            return exceptions.get(conn, exc_id)

    def act(exc_id: RowId, who: Identity, action: Action, reason: str | None = None) -> Any:
        done = exceptions.act(hub.engine, exc_id, action, actor=who.name, at=now(),
                              reason=reason)
        return {"id": done.id, "status": done.status}

    @routes.post("/v1/exceptions/{exc_id}/retry", tags=["exceptions"])
    def retry(exc_id: RowId, who: Actor) -> Any:
        return act(exc_id, who, "retry")

    @routes.post("/v1/exceptions/{exc_id}/replay", tags=["exceptions"])
    def replay(exc_id: RowId, who: Actor) -> Any:
        return act(exc_id, who, "replay")

    @routes.post("/v1/exceptions/{exc_id}/dismiss", tags=["exceptions"])
    def dismiss(exc_id: RowId, body: DismissBody, who: Actor) -> Any:
        return act(exc_id, who, "dismiss", body.note)

    return routes
