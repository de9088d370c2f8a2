"""The migrations and the tables module describe the same schema, and a store
written before the dispatch lanes keeps its queue across the upgrade. (The
``db_url`` fixture is an empty store: nothing is migrated yet.)"""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from billbridge.engine.clock import ManualClock
from billbridge.engine.hub import Hub
from billbridge.store.db import alembic_config, make_engine, migrate
from billbridge.store.tables import metadata
from fakes import FakeTarget


def test_the_migrations_build_what_the_tables_module_says(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    engine.dispose()


def test_a_queue_written_before_lanes_is_sent_after_the_upgrade(db_url: str) -> None:
    """A pending command of 0006's outbox lands in lane 0, and the old target
    lease (held by a worker of the old version) no longer holds anything up."""
    engine = make_engine(db_url)
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


def test_attempt_pages_keep_room_for_their_settling_update(pg_url: str) -> None:
    """PostgreSQL can settle an attempt without new index entries (a HOT
    update) only if its page has room: the table keeps half of each free."""
    engine = make_engine(pg_url)
    migrate(engine)
    with engine.connect() as conn:
        options = conn.execute(text("SELECT reloptions FROM pg_class "
                                    "WHERE relname = 'delivery_attempts'")).scalar()
    assert options == ["fillfactor=50"]
    with engine.begin() as conn:
        cfg = alembic_config(engine)
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0007")
        assert conn.execute(text("SELECT reloptions FROM pg_class "
                                 "WHERE relname = 'delivery_attempts'")).scalar() is None
    engine.dispose()
