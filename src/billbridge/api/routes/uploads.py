"""Timesheet file uploads (POST /v1/files/{source}): a CSV or XLSX file into a
file source's watched folder, read at once (services.uploads), by a token
that may submit that source's time entries and expenses. The token and source
are checked before the body is read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Query, Request

from billbridge.api.routes.common import Ingester
from billbridge.services import uploads

FILE_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "text/csv": {"schema": {"type": "string", "format": "binary"}},
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
        "schema": {"type": "string", "format": "binary"}}}}}


def router(intakes: Mapping[str, uploads.FileIntake]) -> APIRouter:
    routes = APIRouter()

    @routes.post("/v1/files/{source}", status_code=201, tags=["ingress"],
                 openapi_extra=FILE_BODY)
    async def upload(source: str, request: Request, who: Ingester,
                     name: Annotated[str, Query(min_length=1, max_length=uploads.MAX_NAME,
                                                description="the file's name, .csv or .xlsx")],
                     ) -> dict[str, Any]:
        """A timesheet or expense file for ``source``, read at once: answered
        with the name it has in the folder, whether those bytes were there
        already, and what became of its rows (``refused``: the rows sent to
        the exception queue, with their line and exception)."""
        into = uploads.intake(intakes, who, source)
        hub = request.app.state.hub
        done = await to_thread.run_sync(uploads.import_file, hub.engine, hub.clock, into, name,
                                        await request.body())
        saved = done.saved
        return {"source": source, "name": saved.name, "bytes": saved.size,
                "sha256": saved.digest, "already": saved.already, "rows": done.rows,
                "imported": done.imported, "repeated": done.repeated,
                "refused": [{"line": r.line, "message": r.message,
                             "exception": r.exception_id, "new": r.new}
                            for r in done.refused]}

    return routes
