"""The migrations and the tables module describe the same schema, and a store
written before the dispatch lanes keeps its queue across the upgrade."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from billbridge.engine.clock import ManualClock
from billbridge.engine.hub import Hub
from billbridge.store.db import alembic_config, make_engine, migrate, scratch_database
from billbridge.store.tables import metadata
from conftest import PG_URL, skip_without_pg
from fakes import FakeTarget


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def bare_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty store: no migration run yet."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hub.db'}"
        return
    skip_without_pg()
    assert PG_URL is not None
    with scratch_database(PG_URL, prefix="bb_test") as url:
        yield url


def test_the_migrations_build_what_the_tables_module_says(bare_url: str) -> None:
    engine = make_engine(bare_url)
    migrate(engine)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    engine.dispose()


def test_a_queue_written_before_lanes_is_sent_after_the_upgrade(bare_url: str) -> None:
    """A pending command of 0006's outbox lands in lane 0, and the old target
    lease (held by a worker of the old version) no longer holds anything up."""
    engine = make_engine(bare_url)
    with engine.begin() as conn:
        cfg = alembic_config(engine)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0006")
        conn.execute(text(
            "INSERT INTO outbox (target, kind, idempotency_key, aggregate_key, payload, "
            "correlation_id, status, attempts, next_attempt_ms, created_at) VALUES "
            "('ledger', 'customer.upsert', 'k-1', 'customer:C-1', '{\"id\": \"C-1\"}', "
            "'c-1', 'pending', 0, 0, CURRENT_TIMESTAMP)"))
        conn.execute(text(
            "INSERT INTO target_leases (target, lease_owner, lease_until_ms, circuit, "
            "circuit_until_ms, consecutive_failures) VALUES "
            "('ledger', 'old-worker', 99999999999999, 'closed', 0, 0)"))
    target = FakeTarget()
    target.concurrency = 3  # type: ignore[attr-defined]
    hub = Hub(engine, {"ledger": target}, clock=ManualClock())  # migrates to the head
    with engine.connect() as conn:
        assert conn.execute(text("SELECT lane FROM outbox")).scalar() == 0
    assert hub.dispatcher.run_once() == 1
    assert list(target.applied) == ["k-1"]
    engine.dispose()
