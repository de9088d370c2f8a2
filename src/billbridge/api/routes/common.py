"""What the routers share: the role each route requires, the query and path
values they accept (api.params) and a page of rows with its cursor."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Query
from fastapi import Path as PathParam
from pydantic import BaseModel, BeforeValidator, Field

from billbridge.api.auth import Permission, require
from billbridge.api.params import MAX_ID, MAX_VERSION, PRINTABLE, whole_number
from billbridge.engine.tokens import Identity

Reader = Annotated[Identity, Depends(require(Permission.READ))]
Actor = Annotated[Identity, Depends(require(Permission.ACT))]
Proposer = Annotated[Identity, Depends(require(Permission.CONFIG_PROPOSE))]
Approver = Annotated[Identity, Depends(require(Permission.CONFIG_APPROVE))]
Auditor = Annotated[Identity, Depends(require(Permission.AUDIT))]
Ingester = Annotated[Identity, Depends(require(Permission.INGEST))]
SchemaReader = Annotated[Identity, Depends(require(Permission.SCHEMAS))]
# The number check after the bounds: placed before them it hides them from the
# OpenAPI document.
Digits = BeforeValidator(whole_number)
Limit = Annotated[int, Query(ge=1, le=1000), Digits]
Cursor = Annotated[int | None, Query(ge=0, le=MAX_ID,
                                     description="the last id of the previous page"), Digits]
RowId = Annotated[int, PathParam(ge=1, le=MAX_ID), Digits]
VersionNo = Annotated[int, PathParam(ge=1, le=MAX_VERSION), Digits]
Ident = Annotated[str, PathParam(max_length=300, pattern=PRINTABLE,
                                 description="an event, record, command or posting id")]
Filter = Annotated[str | None, Query(max_length=200, pattern=PRINTABLE)]


class Page(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: int | None = Field(description="pass as ?cursor= for the next page")


def page(items: list[dict[str, Any]], limit: int) -> Page:
    """A full page points at the next one by its last row's id."""
    return Page(items=items, next_cursor=int(items[-1]["id"]) if len(items) == limit else None)


def now() -> datetime:
    return datetime.now(UTC)
