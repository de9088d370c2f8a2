"""Timesheet uploads in the console: a token that may submit a file source's
time uploads a CSV there and sees its rows imported (posted to the ERP once
processed) and its bad row refused with its line, linked to the exception
queue; the same file sent again adds nothing, in the hub or in the ERP; and
every mistake (a wrong type, a body too large, an unknown source, a source
not the token's, a broken workbook) is one line on the page."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from billbridge.connectors.timesheet_files.client import TimesheetFolder
from billbridge.connectors.timesheet_files.source import FileSource
from billbridge.emulation.recording import RecordingTarget
from billbridge.engine import tokens
from billbridge.engine.hub import Hub
from billbridge.services.uploads import FILE_EVENTS
from billbridge.store.db import make_engine
from billbridge.store.tables import exceptions
from billbridge.web import create_app
from conftest import CONFIG, project_event

SHEET = (b"Entry ID,Employee,Project,Task,Date,Hours\n"
         b"E1,w-alice,GLX-001,dev,2026-03-02,8\n"
         b"E2,w-bob,GLX-001,dev,2026-03-02,lots\n"
         b"E3,w-bob,GLX-001,dev,2026-03-03,7.5\n")


@pytest.fixture
def hub() -> Hub:
    hub = Hub(make_engine("sqlite://"), {"ledger": RecordingTarget("ledger")})
    hub.activate_config(CONFIG)
    hub.ingest([project_event()], source="harvest")
    hub.run_until_idle()
    return hub


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    (tmp_path / "timesheets").mkdir()
    return tmp_path / "timesheets"


def console_for(hub: Hub, drop: Path, role: tokens.Role = tokens.Role.INGEST,
                sources: tuple[str, ...] = ("csv",), **options: object) -> TestClient:
    """A console signed in with a token of ``role`` that may submit ``sources``' files."""
    app = create_app(hub, uploads={"csv": FileSource(TimesheetFolder(drop), name="csv")},
                     **options)
    client = TestClient(app)
    with hub.engine.begin() as conn:
        _, made = tokens.create(conn, name=f"{role.value}-uploads", role=role,
                                scope=tokens.Scope.of(sources, FILE_EVENTS),
                                expires_in=timedelta(hours=1), actor="t", at=datetime.now(UTC))
    landed = client.post("/console/login", data={"token": made})
    assert landed.status_code == 200, landed.text
    return client


def upload(client: TestClient, name: str, data: bytes, source: str = "csv",
           csrf: str | None = None) -> str:
    page = client.get("/console/files").text
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found is not None
    answer = client.post(f"/console/files/{source}", data={"csrf": csrf or found[1]},
                         files={"file": (name, data, "text/csv")})
    assert answer.status_code in (200, 403), answer.text
    return answer.text


def one_line(page: str) -> str:
    [error] = re.findall(r'<p id="error" class="bad">([^<]*)</p>', page)
    assert "Traceback" not in page and "\n" not in error
    return html.unescape(error)


def test_an_upload_shows_rows_imported_and_refused_by_line_and_a_resend_adds_nothing(
        hub: Hub, drop: Path) -> None:
    console = console_for(hub, drop, role=tokens.Role.ADMIN)
    page = upload(console, "march.csv", SHEET)
    assert re.search(r'<strong id="imported">2</strong> of 3 rows imported', page), page
    [(line, why, exception_id)] = re.findall(
        r'<tr data-line="(\d+)"><td>\d+</td><td>([^<]*)</td><td><a href="/console/exceptions'
        r'\?reason=MALFORMED_PAYLOAD#exception-(\d+)">', page)
    assert line == "3" and "march.csv line 3" in why and "hours" in why.lower()
    with hub.engine.connect() as conn:
        kept = conn.execute(select(exceptions.c.id, exceptions.c.reason, exceptions.c.raw)
                            ).all()
    assert [(str(i), r) for i, r, _ in kept] == [(exception_id, "MALFORMED_PAYLOAD")]
    assert "lots" in kept[0].raw
    assert f'id="exception-{exception_id}"' in console.get(
        "/console/exceptions?reason=MALFORMED_PAYLOAD").text
    hub.run_until_idle()
    erp = hub.targets["ledger"]
    assert isinstance(erp, RecordingTarget)
    posted = sorted((p.hours, p.amount) for p in erp.live_postings())
    assert posted == [(Decimal("7.50"), Decimal("1125.00")),  # Bob, 7.5 h at 150
                      (Decimal("8.00"), Decimal("1400.00"))]  # Alice, 8 h at 175

    again = upload(console, "march (1).csv", SHEET)  # the same bytes under another name
    assert 'id="nothing"' in again and "the same file was uploaded before" in again
    assert re.search(r'<strong id="imported">0</strong> of 3 rows imported, '
                     r'<span id="repeated">2</span> already in the hub', again)
    assert "(refused before)" in again
    hub.run_until_idle()
    assert sorted((p.hours, p.amount) for p in erp.live_postings()) == posted
    with hub.engine.connect() as conn:
        assert len(conn.execute(select(exceptions.c.id)).all()) == 1
    assert sorted(p.name for p in drop.iterdir()) == ["march.csv"]


def test_an_ingest_token_lands_on_the_upload_page_and_sees_only_it(
        hub: Hub, drop: Path) -> None:
    console = console_for(hub, drop)
    page = console.get("/console/files")
    assert page.url.path == "/console/files"
    assert re.findall(r'<header>.*?</header>', page.text, re.S)[0].count("<a href") == 1
    assert console.get("/console/exceptions").status_code == 403
    shown = upload(console, "march.csv", SHEET)
    # The queue is not the ingest role's to read: the line and exception, no link.
    assert "march.csv line 3" in shown and "/console/exceptions" not in shown


def test_a_refused_upload_is_one_line_on_the_page(hub: Hub, drop: Path) -> None:
    console = console_for(hub, drop, sources=("csv", "harvest"), max_body_bytes=2048)
    for name, data, source, says in [
        ("march.txt", SHEET, "csv",
         "Not uploaded: file name 'march.txt' must end in .csv or .xlsx"),
        ("march.csv", SHEET, "harvest",
         "Not uploaded: harvest is not a file source (file sources: csv)"),
        ("march.xlsx", b"PK\x03\x04 not really a workbook", "csv",
         "Not uploaded: march.xlsx cannot be read as a timesheet (BadZipFile"),
        ("march.csv", b"Employee,Hours\n" + b"w-alice,8\n" * 400, "csv",
         "Not uploaded: the body is over the 2,048 bytes this hub accepts."),
    ]:
        assert one_line(upload(console, name, data, source)).startswith(says), name
        assert list(drop.iterdir()) == []


def test_a_source_not_the_tokens_and_a_forged_form_are_refused(hub: Hub, drop: Path) -> None:
    console = console_for(hub, drop, sources=("harvest",))
    page = console.get("/console/files").text
    assert "Not yours to upload to: ingest-uploads may submit events from harvest only" in page
    assert 'action="/console/files/csv"' not in page
    assert one_line(upload(console, "march.csv", SHEET)).startswith(
        "Not uploaded: ingest-uploads may submit events from harvest only, not from 'csv'")
    forged = upload(console_for(hub, drop), "march.csv", SHEET, csrf="0" * 64)
    assert "CSRF check failed" in forged
    assert list(drop.iterdir()) == []
