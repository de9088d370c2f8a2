"""Timesheet file uploads (POST /v1/files/{source}): a CSV or XLSX file into a
file source's watched folder, by a token that may submit that source's time
entries and expenses. The token and source are checked before the body is read."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Query, Request

from billbridge.api.problems import ApiError
from billbridge.api.routes.common import Ingester
from billbridge.engine.tokens import OutOfScope
from billbridge.services import uploads

FILE_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "text/csv": {"schema": {"type": "string", "format": "binary"}},
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
        "schema": {"type": "string", "format": "binary"}}}}}


def router(drops: Mapping[str, Path]) -> APIRouter:
    routes = APIRouter()

    @routes.post("/v1/files/{source}", status_code=201, tags=["ingress"],
                 openapi_extra=FILE_BODY)
    async def upload(source: str, request: Request, who: Ingester,
                     name: Annotated[str, Query(min_length=1, max_length=uploads.MAX_NAME,
                                                description="the file's name, .csv or .xlsx")],
                     ) -> dict[str, Any]:
        """A timesheet or expense file for ``source``'s next poll; answered with
        the name it has in the folder, and whether those bytes were there already."""
        try:
            who.check_event_types(source, uploads.FILE_EVENTS)
        except OutOfScope as exc:
            raise ApiError(403, "OUT_OF_SCOPE", str(exc)) from None
        folder = drops.get(source)
        if folder is None:
            known = ", ".join(sorted(drops)) or "none on this hub"
            raise ApiError(404, "NOT_FOUND", f"{source} is not a file source (file sources: "
                                             f"{known})")
        saved = await to_thread.run_sync(uploads.save, folder, name, await request.body())
        return {"source": source, "name": saved.name, "bytes": saved.size,
                "sha256": saved.digest, "already": saved.already}

    return routes
