"""Shared fixtures: a store per test on SQLite (always) and PostgreSQL (when
BILLBRIDGE_TEST_PG_URL is set; CI sets it), and a demo-like configuration."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from billbridge.engine.secrets import new_key
from billbridge.store.db import make_engine, migrate, scratch_database
from refs_spy import RefsAsked

# A hub keys its audit chain with its secret key: the tests' hubs (and the
# commands they run, which inherit the environment) share one for the session.
os.environ.setdefault("BILLBRIDGE_SECRET_KEY", new_key().decode())
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
    """A fresh, empty database on the test server, dropped afterwards."""
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


class MigratedStores:
    """A store of each kind migrated once per session, copied for each test
    that wants a migrated store: the migrations run once, not before every
    test (test_schema tests them from an empty store)."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._sqlite: Path | None = None
        self._pg_template: str | None = None
        self._resources = ExitStack()

    def sqlite_copy(self, path: Path) -> str:
        if self._sqlite is None:
            template = self._directory / "migrated.db"
            _migrate_once(f"sqlite:///{template}")  # closed, so no WAL is left beside it
            self._sqlite = template
        shutil.copyfile(self._sqlite, path)
        return f"sqlite:///{path}"

    @contextmanager
    def postgres_copy(self) -> Iterator[str]:
        assert PG_URL
        if self._pg_template is None:
            url = self._resources.enter_context(scratch_database(PG_URL, prefix="bb_template"))
            _migrate_once(url)  # disposed: a template may have nobody connected
            self._pg_template = url.rpartition("/")[2]
        with scratch_database(PG_URL, prefix="bb_test", template=self._pg_template) as url:
            yield url

    def close(self) -> None:
        self._resources.close()


def _migrate_once(url: str) -> None:
    eng = make_engine(url)
    try:
        migrate(eng)
    finally:
        eng.dispose()


@pytest.fixture(scope="session")
def migrated_stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MigratedStores]:
    stores = MigratedStores(tmp_path_factory.mktemp("migrated"))
    yield stores
    stores.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path,
           migrated_stores: MigratedStores) -> Iterator[Engine]:
    """A migrated store of each kind, a copy of the session's migrated one."""
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = migrated_stores.sqlite_copy(tmp_path / "hub.db")
        else:
            skip_without_pg()
            url = stack.enter_context(migrated_stores.postgres_copy())
        eng = make_engine(url)
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


@pytest.fixture
def ledger_erp() -> Iterator[Any]:
    """The ERP of tests/billing_story.py: the generic ledger's emulator, with no
    idempotency of its own (a second invoice sent is a second invoice held)."""
    from billing_story import ledger

    with ledger() as erp:
        yield erp
