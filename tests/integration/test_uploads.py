"""Timesheet file uploads (POST /v1/files/{source}): only a token bound to that
file source's time entries and expenses puts a file in its watched folder;
the name and content are checked first; the same bytes are not saved twice;
the upload is read into the inbox at once, and the source's poll does not
read it again."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from billbridge.connectors.timesheet_files.client import TimesheetFolder
from billbridge.connectors.timesheet_files.source import FileSource
from billbridge.engine import tokens
from billbridge.engine.hub import Hub
from billbridge.engine.sync import sync
from billbridge.services.uploads import FILE_EVENTS
from billbridge.store.tables import inbox
from billbridge.web import create_app
from conftest import CONFIG
from fakes import FakeTarget

SHEET = (b"Entry ID,Employee,Project,Task,Date,Hours\n"
         b"E1,w-alice,GLX-001,dev,2026-03-02,8\n"
         b"E2,w-bob,GLX-001,dev,2026-03-02,7.5\n")


@pytest.fixture
def hub(engine: Engine) -> Hub:
    hub = Hub(engine, {"ledger": FakeTarget()})
    hub.activate_config(CONFIG)
    return hub


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    folder = tmp_path / "timesheets"
    folder.mkdir()
    return folder


@pytest.fixture
def source(drop: Path) -> FileSource:
    return FileSource(TimesheetFolder(drop), name="csv")


@pytest.fixture
def client(hub: Hub, source: FileSource) -> Iterator[TestClient]:
    with TestClient(create_app(hub, uploads={"csv": source})) as test:
        yield test


def token(hub: Hub, role: tokens.Role, scope: tokens.Scope | None = None) -> dict[str, str]:
    with hub.engine.begin() as conn:
        _, made = tokens.create(conn, name=f"{role.value}-upload", role=role, scope=scope,
                                expires_in=timedelta(hours=1), actor="t", at=datetime.now(UTC))
    return {"Authorization": f"Bearer {made}"}


def uploader(hub: Hub, source: str = "csv") -> dict[str, str]:
    return token(hub, tokens.Role.INGEST, tokens.Scope.of([source], FILE_EVENTS))


def test_an_uploaded_file_is_read_at_once_and_not_again_by_the_poll(
        hub: Hub, client: TestClient, drop: Path, source: FileSource) -> None:
    answer = client.post("/v1/files/csv?name=march.csv", content=SHEET,
                         headers={**uploader(hub), "Content-Type": "text/csv"})
    assert answer.status_code == 201, answer.text
    done = answer.json()
    assert (done["name"], done["already"], done["rows"], done["imported"], done["refused"]
            ) == ("march.csv", False, 2, 2, [])
    assert (drop / "march.csv").read_bytes() == SHEET
    assert [p.name for p in drop.iterdir()] == ["march.csv"]  # no temporary file left

    again = client.post("/v1/files/csv?name=march-again.csv", content=SHEET,
                        headers=uploader(hub))
    assert again.status_code == 201
    assert {k: again.json()[k] for k in ("name", "already", "imported", "repeated")} == {
        "name": "march.csv", "already": True, "imported": 0, "repeated": 2}

    polled = sync(hub.engine, source, hub.clock)
    assert (polled.accepted, polled.duplicates) == (0, 0)  # marked read by the upload
    with hub.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(inbox).where(
            inbox.c.source == "csv")).scalar_one() == 2


def test_a_different_file_under_a_taken_name_is_kept_beside_it(
        hub: Hub, client: TestClient, drop: Path) -> None:
    client.post("/v1/files/csv?name=march.csv", content=SHEET, headers=uploader(hub))
    other = SHEET.replace(b"7.5", b"6")
    answer = client.post("/v1/files/csv?name=march.csv", content=other, headers=uploader(hub))
    assert answer.status_code == 201
    assert answer.json()["name"].startswith("march-") and answer.json()["name"] != "march.csv"
    assert (drop / "march.csv").read_bytes() == SHEET


@pytest.mark.parametrize(("who", "status", "code"), [
    ("none", 401, "UNAUTHENTICATED"),
    ("auditor", 403, "FORBIDDEN"),
    ("other-source", 403, "OUT_OF_SCOPE"),
    ("time-only", 403, "OUT_OF_SCOPE"),
])
def test_only_a_token_bound_to_the_file_source_uploads(
        hub: Hub, client: TestClient, drop: Path, who: str, status: int, code: str) -> None:
    headers = {
        "none": {},
        "auditor": token(hub, tokens.Role.AUDITOR),
        "other-source": uploader(hub, "harvest"),
        "time-only": token(hub, tokens.Role.INGEST,
                           tokens.Scope.of(["csv"], ["time_entry.upserted"])),
    }[who]
    answer = client.post("/v1/files/csv?name=march.csv", content=SHEET, headers=headers)
    assert (answer.status_code, answer.json()["code"]) == (status, code)
    assert list(drop.iterdir()) == []


@pytest.mark.parametrize(("name", "body", "says"), [
    ("../escape.csv", SHEET, "must be a plain name"),
    (".hidden.csv", SHEET, "must be a plain name"),
    ("march.txt", SHEET, "must end in .csv or .xlsx"),
    ("march.csv", b"  \n", "is empty"),
    ("march.csv", "Employee\nJosé\n".encode("latin-1"), "is not UTF-8 text"),
    ("march.xlsx", SHEET, "is not an XLSX workbook"),
])
def test_a_file_that_cannot_be_a_timesheet_is_refused_saying_what_to_fix(
        hub: Hub, client: TestClient, drop: Path, name: str, body: bytes, says: str) -> None:
    answer = client.post("/v1/files/csv", params={"name": name}, content=body,
                         headers=uploader(hub))
    assert answer.status_code == 422, answer.text
    assert says in answer.json()["detail"]
    assert list(drop.iterdir()) == []


def test_a_source_that_takes_no_files_is_not_found(hub: Hub, client: TestClient) -> None:
    answer = client.post("/v1/files/harvest?name=march.csv", content=SHEET,
                         headers=uploader(hub, "harvest"))
    assert (answer.status_code, answer.json()["code"]) == (404, "NOT_FOUND")
    assert "file sources: csv" in answer.json()["detail"]
