"""A polled source that reads governed settings (the timesheet files' column
map here) gets the active configuration parsed once per version and store:
polls of an unchanged version parse nothing, a newly approved version is
applied on the next poll, and two stores whose version numbers coincide
never share a parse."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from billbridge.connectors.base import Connection
from billbridge.connectors.registry import connector
from billbridge.connectors.timesheet_files.emulator import TimesheetExporter
from billbridge.connectors.timesheet_files.source import FileSource
from billbridge.domain.config import Configuration
from billbridge.engine import config_store
from billbridge.engine.clock import SystemClock
from billbridge.engine.sync import sync
from billbridge.store.db import make_engine, migrate
from conftest import CONFIG

LAYOUT = ["Consultant", "Project", "Day", "Time"]
ROW = {"Consultant": "w-alice", "Project": "GLX-001", "Day": "31.03.2026", "Time": "7,5"}
MAPPED = {**CONFIG, "field_mappings": {"csv": {
    "worker": "Consultant", "work_date": "Day", "hours": "Time",
    "date_format": "%d.%m.%Y", "decimal_comma": "true"}}}
NOW = datetime(2026, 4, 1, 6, tzinfo=UTC)


def store(path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    return engine


@pytest.fixture
def hub_store(tmp_path: Path) -> Iterator[Engine]:
    engine = store(tmp_path / "hub.db")
    yield engine
    engine.dispose()


def timesheets(folder: Path) -> FileSource:
    """The csv connection over ``folder``, holding one row in a layout that only
    ``MAPPED`` reads."""
    TimesheetExporter(folder).export("other-layout.csv", [ROW], LAYOUT)
    made = connector("csv").source
    assert made is not None
    source = made(Connection("csv", "csv", f"file://{folder}"))
    assert isinstance(source, FileSource)
    return source


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every configuration document parsed while the test runs."""
    seen: list[Any] = []
    parse = Configuration.model_validate

    def counted(document: Any, *args: Any, **kwargs: Any) -> Configuration:
        seen.append(document)
        return parse(document, *args, **kwargs)

    monkeypatch.setattr(Configuration, "model_validate", counted)
    return seen


def test_polls_of_an_unchanged_version_parse_it_once(
        hub_store: Engine, tmp_path: Path, parses: list[Any]) -> None:
    with hub_store.begin() as conn:
        config_store.activate(conn, CONFIG, actor="test", at=NOW)
    source = timesheets(tmp_path / "drop")
    parses.clear()
    results = [sync(hub_store, source, SystemClock()) for _ in range(4)]
    assert len(parses) == 1
    assert (results[0].accepted, results[0].malformed) == (0, 1)  # not this layout
    assert [r.pages for r in results[1:]] == [0, 0, 0]


def test_an_approved_version_is_applied_on_the_next_poll(
        hub_store: Engine, tmp_path: Path, parses: list[Any]) -> None:
    with hub_store.begin() as conn:
        config_store.activate(conn, CONFIG, actor="test", at=NOW)
    source = timesheets(tmp_path / "drop")
    assert sync(hub_store, source, SystemClock()).malformed == 1
    with hub_store.begin() as conn:
        version = config_store.propose(conn, MAPPED, actor="paul", at=NOW)
        config_store.approve(conn, version, actor="fiona", at=NOW)
    parses.clear()
    applied = sync(hub_store, source, SystemClock())
    assert (applied.accepted, applied.malformed) == (1, 0)  # the approved column map
    assert sync(hub_store, source, SystemClock()).pages == 0
    assert len(parses) == 1  # the new version, once


def test_stores_whose_version_numbers_coincide_keep_their_own_configuration(
        tmp_path: Path) -> None:
    mapped, plain = store(tmp_path / "mapped.db"), store(tmp_path / "plain.db")
    for engine, document in ((mapped, MAPPED), (plain, CONFIG)):
        with engine.begin() as conn:
            assert config_store.activate(conn, document, actor="test", at=NOW) == 1
    first = sync(mapped, timesheets(tmp_path / "a"), SystemClock())
    second = sync(plain, timesheets(tmp_path / "b"), SystemClock())
    assert (first.accepted, second.accepted, second.malformed) == (1, 0, 1)
    mapped.dispose()
    plain.dispose()
