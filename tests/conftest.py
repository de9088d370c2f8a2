"""Shared fixtures: a store per test on SQLite (always) and PostgreSQL (when
BILLBRIDGE_TEST_PG_URL is set; CI sets it), and a demo-like configuration."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from billbridge.store.db import make_engine, migrate, scratch_database
from refs_spy import RefsAsked

PG_URL = os.environ.get("BILLBRIDGE_TEST_PG_URL")
SKIP_PG = "PostgreSQL tests need BILLBRIDGE_TEST_PG_URL (set by .ci/run)"
REQUIRE_PG = bool(os.environ.get("BILLBRIDGE_REQUIRE_PG"))


def skip_without_pg() -> None:
    """Skip with a clear reason outside CI; in CI a missing server is a failure."""
    if PG_URL:
        return
    if REQUIRE_PG:
        pytest.fail("BILLBRIDGE_REQUIRE_PG is set but BILLBRIDGE_TEST_PG_URL is not")
    pytest.skip(SKIP_PG)

CONFIG: dict[str, Any] = {
    "legal_entities": [{"code": "US01", "name": "Acme Consulting Inc", "country": "US",
                        "functional_currency": "USD"}],
    "workers": [
        {"id": "w-alice", "name": "Alice Ng", "role": "consultant", "legal_entity": "US01",
         "cost_rate": "80.00", "currency": "USD"},
        {"id": "w-bob", "name": "Bob Ruiz", "role": "consultant", "legal_entity": "US01",
         "cost_rate": "70.00", "currency": "USD"},
        {"id": "w-carol", "name": "Carol Diaz", "role": "designer", "legal_entity": "US01",
         "cost_rate": "60.00", "currency": "USD"},
    ],
    "rate_cards": [{"id": "rc-standard", "version": 1, "currency": "USD",
                    "effective_from": "2026-01-01",
                    "rates": {"consultant": "150.00", "architect": "210.00"},
                    "worker_overrides": {"w-alice": "175.00"}}],
    "default_rate_card": "rc-standard",
}


def _pg_database(url: str) -> Iterator[str]:
    """A fresh database on the test server, dropped afterwards."""
    with scratch_database(url, prefix="bb_test") as scratch:
        yield scratch


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hub.db'}"
        return
    skip_without_pg()
    assert PG_URL
    yield from _pg_database(PG_URL)


@pytest.fixture
def pg_url() -> Iterator[str]:
    skip_without_pg()
    assert PG_URL
    yield from _pg_database(PG_URL)


@pytest.fixture
def refs_asked(monkeypatch: pytest.MonkeyPatch) -> RefsAsked:
    """Every reference a connector asks of a command's ``refs`` in this test."""
    return RefsAsked(monkeypatch)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    migrate(eng)
    yield eng
    eng.dispose()


def time_entry(entry_id: str, *, project: str = "GLX-001", worker: str = "w-alice",
               hours: str = "8", version: int = 1, status: str = "approved",
               work_date: str = "2026-03-02", event_id: str | None = None,
               at: str = "2026-03-03T18:00:00Z") -> dict[str, Any]:
    return {
        "type": "time_entry.upserted", "id": event_id or f"{entry_id}:v{version}", "at": at,
        "data": {"id": entry_id, "worker": worker, "project": project, "task": "dev",
                 "work_date": work_date, "hours": hours, "billable": True,
                 "status": status, "source_version": version},
    }


def project_event(code: str = "GLX-001", status: str = "active",
                  event_id: str | None = None) -> dict[str, Any]:
    return {
        "type": "project.updated", "id": event_id or f"project:{code}:{status}",
        "at": "2026-03-01T09:00:00Z",
        "data": {"code": code, "name": f"Project {code}", "status": status,
                 "tasks": [{"id": "dev", "name": "Development", "billable": True}]},
    }
