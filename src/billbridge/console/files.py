"""Timesheet uploads in the console: a file input per file source the
signed-in token may submit time for, read at once by the same use case as
POST /v1/files/{source} (services.uploads), and what became of the rows shown
on the page: imported, already in the hub, or refused into the exception
queue with their line. Every refusal is one line on the page."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from billbridge.console.views import _check_csrf, _hub, _who, page
from billbridge.engine.tokens import Identity
from billbridge.errors import BillbridgeError, Invalid
from billbridge.services import auth, uploads
from billbridge.services.auth import Permission

HERE = "/console/files"
router = APIRouter(prefix="/console", include_in_schema=False)


def refusal(request: Request, message: str) -> Response | None:
    """A form's body over the hub's cap, answered on the upload page (the
    API's problem body for anything else: None)."""
    if not request.url.path.startswith(HERE + "/"):
        return None
    return RedirectResponse(f"{HERE}?error={quote(f'Not uploaded: {message}.')}",
                            status_code=303)


def _page(request: Request, who: Identity, **context: Any) -> HTMLResponse:
    intakes: dict[str, uploads.FileIntake] = request.app.state.uploads
    sources = [{"name": name, "why_not": uploads.may_upload(who, name)}
               for name in sorted(intakes)]
    return page(request, "files.html", HERE, who, sources=sources,
                may_read=auth.allowed(who, Permission.READ), max_name=uploads.MAX_NAME,
                **{"error": "", "done": None, **context})


@router.get("/files")
def upload_page(request: Request, error: str = "") -> HTMLResponse:
    return _page(request, _who(request, Permission.INGEST), error=error[:300])


@router.post("/files/{source}")
def upload(request: Request, source: str, csrf: str = Form(""),
           file: UploadFile | None = File(None)) -> HTMLResponse:
    who = _who(request, Permission.INGEST)
    _check_csrf(request, csrf)
    hub = _hub(request)
    try:
        into = uploads.intake(request.app.state.uploads, who, source)
        if file is None or not file.filename:
            raise Invalid("choose a .csv or .xlsx file to upload")
        done = uploads.import_file(hub.engine, hub.clock, into, file.filename,
                                   file.file.read())
    except BillbridgeError as exc:
        return _page(request, who, error=f"Not uploaded: {exc.message}")
    return _page(request, who, done=done, at=datetime.now(UTC).isoformat())
